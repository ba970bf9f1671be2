#!/usr/bin/env python3
# Regenerates the seed corpora in fuzz/corpus/{manifest,grants}/ (checked in;
# run this only after changing it). Hashes are SHA-256 of fixed strings, so
# they look real and never change. Files named valid_*/allow_*/approvals*
# parse; bad_* are near misses that must be refused.
import hashlib, json, os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
os.makedirs("manifest", exist_ok=True)
os.makedirs("grants", exist_ok=True)
def h(s): return hashlib.sha256(s.encode()).hexdigest()
M='manifest'; G='grants'
def w(d, name, text):
    with open(os.path.join(d, name), 'w') as f: f.write(text)

progs = {
 'drop_small': dict(desc="Drops UDP datagrams whose payload is shorter than a minimum fixed at build time",
                    prog=("drop_small","socket_filter"), maps=[], inst="shared"),
 'reuseport_cpu': dict(desc="Steers each datagram of an SO_REUSEPORT group to the socket registered for the receiving CPU",
                    prog=("select_by_cpu","sk_reuseport"), maps=[("sockets","write")], inst="per-client"),
 'src_allow': dict(desc="Accepts datagrams only from source prefixes the client allows (longest prefix wins); drops the rest",
                    prog=("src_allow","socket_filter"), maps=[("allowed_v4","write"),("allowed_v6","write")], inst="per-client"),
 'udp_stats': dict(desc="Counts datagrams and UDP payload bytes on the sockets it is attached to",
                    prog=("count","socket_filter"), maps=[("stats","read")], inst="per-client"),
}
def manifest(name, p, **over):
    d = {"schema":1,"name":name,"version":"1.0.0","description":p['desc'],
         "object":name+".bpf.o","object_sha256":h(name+".bpf.o"),
         "programs":[{"name":p['prog'][0],"type":p['prog'][1]}],
         "maps":[{"name":n,"client_access":a} for n,a in p['maps']],
         "instance":p['inst'],"requires":[]}
    d.update(over)
    return d
def dump(d, pretty=True): return json.dumps(d, indent=2 if pretty else None) + "\n"

for n,p in progs.items():
    # The shipped manifests, guard included; the others stay as old manifests were.
    w(M, f"valid_{n}.json", dump(manifest(n,p, revocation={"guard":"bpfbroker_revoked"})))
p = progs['udp_stats']
w(M, "valid_minimal_compact.json", dump({k:v for k,v in manifest('udp_stats',p).items() if k not in ('description','maps','requires')}, False))
w(M, "valid_all_features.json", dump(manifest('udp_stats', p, requires=["uring_cmd_setsockopt","io_uring_bpf_ops","bpf_token","signed_prog_load"], version="2.1.0-rc1+deb12~1")))
w(M, "valid_shared_read_none.json", dump(manifest('udp_stats', p, instance="shared",
    maps=[{"name":"stats","client_access":"read"},{"name":"cfg","client_access":"none"}])))
w(M, "valid_unicode_description.json", dump(manifest('udp_stats', p, description="Z\u00e4hlt Datagramme \u2014 \U0001F680"), False))

base = manifest('udp_stats', p)
def nm(fname, **over): w(M, "bad_"+fname+".json", dump({**base, **over}))
nm("hash_upper", object_sha256=h("x").upper())
nm("hash_short", object_sha256=h("x")[:63])
nm("object_slash", object="../udp_stats.bpf.o")
nm("object_dot", object=".hidden.o")
nm("name_upper", name="Udp_Stats")
nm("name_leading_dash", name="-udp")
nm("name_too_long", name="a"*65)
nm("version_space", version="1.0 beta")
nm("schema_2", schema=2)
nm("schema_string", schema="1")
nm("two_programs", programs=[{"name":"a","type":"socket_filter"},{"name":"b","type":"socket_filter"}])
nm("no_programs", programs=[])
nm("program_kprobe", programs=[{"name":"count","type":"kprobe"}])
nm("program_not_identifier", programs=[{"name":"9count","type":"socket_filter"}])
nm("shared_write", instance="shared", maps=[{"name":"stats","client_access":"write"}])
nm("map_name_16", maps=[{"name":"a"*16,"client_access":"read"}])
nm("map_twice", maps=[{"name":"stats","client_access":"read"},{"name":"stats","client_access":"none"}])
nm("map_access_rw", maps=[{"name":"stats","client_access":"rw"}])
nm("unknown_feature", requires=["kprobe_multi"])
nm("feature_twice", requires=["bpf_token","bpf_token"])
nm("unknown_field", extra=True)
nm("instance_bad", instance="global")
nm("control_char", description="tab\there")
# Broker-attached programs (issue 9): attach points, parameters, scope, guard.
ub = manifest('uring_stats', dict(desc="io_uring statistics of the calling process",
    prog=("on_complete","raw_tracepoint"), maps=[("counts","read")], inst="per-client"),
    programs=[{"name":"on_complete","type":"raw_tracepoint","attach":"io_uring_complete"}],
    parameters=[{"name":"target_tgid","bind":"caller.tgid"},
                {"name":"min_len","choice":{"type":"u32","min":0,"max":1500,"default":8}},
                {"name":"verbose","choice":{"type":"bool","default":False}}],
    revocation={"guard":"bpfbroker_revoked"})
def ubm(fname, drop=(), **over):
    w(M, fname+".json", dump({**{k:v for k,v in ub.items() if k not in drop}, **over}))
ubm("valid_raw_tracepoint_bound")
ubm("valid_uring_stats_three_programs", name="uring_stats",
    programs=[{"name":"on_create","type":"raw_tracepoint","attach":"io_uring_create"},
              {"name":"on_submit","type":"raw_tracepoint","attach":"io_uring_submit_req"},
              {"name":"on_complete","type":"raw_tracepoint","attach":"io_uring_complete"}],
    maps=[{"name":"ops","client_access":"read"},{"name":"errors","client_access":"read"},
          {"name":"latency","client_access":"read"},{"name":"rings","client_access":"none"},
          {"name":"inflight","client_access":"none"}],
    parameters=[{"name":"target_tgid","bind":"caller.tgid"}])
ubm("bad_client_attached_with_another", programs=[{"name":"count","type":"socket_filter"},
    {"name":"on_complete","type":"raw_tracepoint","attach":"io_uring_complete"}])
ubm("valid_tracepoint_system", drop=("parameters",), scope="system",
    programs=[{"name":"on_complete","type":"tracepoint","attach":"io_uring/io_uring_complete"}])
ubm("valid_client_attached_choice_guard", drop=("parameters",),
    programs=[{"name":"count","type":"socket_filter"}],
    parameters=[{"name":"min_len","choice":{"type":"u64","min":1,"max":18446744073709551615,"default":1}}])
ubm("bad_attach_outside_io_uring", programs=[{"name":"f","type":"tracepoint","attach":"sched/sched_switch"}])
ubm("bad_attach_path", programs=[{"name":"f","type":"raw_tracepoint","attach":"io_uring/../x"}])
ubm("bad_attach_on_socket_filter", programs=[{"name":"f","type":"socket_filter","attach":"io_uring_complete"}])
ubm("bad_unscoped", drop=("parameters",))
ubm("bad_no_guard", drop=("revocation",))
ubm("bad_choice_default_outside", parameters=[{"name":"target_tgid","bind":"caller.tgid"},
    {"name":"n","choice":{"type":"u32","min":2,"max":3,"default":4}}])
ubm("bad_parameter_twice", parameters=[{"name":"target_tgid","bind":"caller.tgid"},
    {"name":"target_tgid","bind":"caller.uid"}])
ubm("bad_bind_and_choice", parameters=[{"name":"target_tgid","bind":"caller.tgid",
    "choice":{"type":"bool","default":True}}])
ubm("bad_bind_unknown", parameters=[{"name":"target_tgid","bind":"request.pid"}])
ubm("bad_scope_unknown", scope="everyone")

d = dump(base, False)
w(M, "bad_duplicate_key.json", d.replace('"schema": 1,', '"schema": 1, "name": "drop_small",', 1))
w(M, "bad_trailing_garbage.json", d.rstrip() + " }\n")
w(M, "bad_comment.json", "// manifest\n" + d)
w(M, "bad_truncated.json", d[:len(d)//2])
w(M, "bad_deep_nesting.json", d.replace('"requires": []', '"requires": ' + "["*20 + "]"*20))
w(M, "bad_not_object.json", "[" + d.strip() + "]\n")

sig = h("key:vendor@example.org")
def grant(prog, match, principals, polkit=None):
    g = {"program":prog, "match":match, "principals":principals}
    if polkit is not None: g["polkit"] = polkit
    return g
mh = lambda n: {"manifest_sha256": h("manifest:"+n)}
g1 = grant("udp_stats", mh("udp_stats"), {"users":["alice",1001],"groups":["netdev",110]})
g2 = grant("src_allow", {"signer":sig}, {"anyone":True}, polkit=True)
g3 = grant("reuseport_cpu", mh("reuseport_cpu"), {"groups":["_bpf-users","www.data"]}, polkit=False)
w(G, "allow_single.json", dump(g1))
w(G, "allow_array.json", dump([g1, g2, g3]))
w(G, "allow_empty_array.json", "[]\n")
w(G, "allow_compact_signer.json", dump(g2, False))
w(G, "approvals.json", dump({"schema":1,
    "approvals":[grant("udp_stats", mh("udp_stats"), {"users":["alice","bob",1000],"groups":[],"anyone":False}, polkit=False),
                 grant("drop_small", {"signer":sig}, {"users":[],"groups":["netdev"],"anyone":False}, polkit=True)],
    "revocations":[{"program":"reuseport_cpu"}]}))
w(G, "approvals_empty.json", dump({"schema":1,"approvals":[],"revocations":[]}))
w(G, "bad_both_matches.json", dump(grant("udp_stats", {**mh("udp_stats"), "signer":sig}, {"anyone":True})))
w(G, "bad_nobody.json", dump(grant("udp_stats", mh("udp_stats"), {"users":[],"anyone":False})))
w(G, "bad_uid_max.json", dump(grant("udp_stats", mh("udp_stats"), {"users":[4294967295]})))
w(G, "bad_uid_negative.json", dump(grant("udp_stats", mh("udp_stats"), {"users":[-1]})))
w(G, "bad_uid_float.json", dump(grant("udp_stats", mh("udp_stats"), {"users":[1000.0]})))
w(G, "bad_user_dash.json", dump(grant("udp_stats", mh("udp_stats"), {"users":["-alice"]})))
w(G, "bad_program_name.json", dump(grant("UDP stats", mh("udp_stats"), {"anyone":True})))
w(G, "bad_polkit_string.json", dump(grant("udp_stats", mh("udp_stats"), {"anyone":True}, polkit="yes")))
w(G, "bad_approvals_schema.json", dump({"schema":2,"approvals":[],"revocations":[]}))
w(G, "bad_approvals_revocation.json", dump({"schema":1,"approvals":[],"revocations":[{"program":"x","when":1}]}))
w(G, "bad_duplicate_key.json", '{"program":"udp_stats","program":"drop_small","match":{"signer":"%s"},"principals":{"anyone":true}}\n' % sig)

# fuzz/corpus/varlink_calls/: one Varlink frame each (without the NUL), for
# varlink_dispatch_fuzzer: every method with valid parameters, and near misses.
V = 'varlink_calls'
os.makedirs(V, exist_ok=True)
def call(name, method, params=None, **flags):
    d = {"method": method}
    if params is not None: d["parameters"] = params
    d.update(flags)
    w(V, name, json.dumps(d, separators=(',', ':')))
B = 'org.bpfbroker.Broker.'
call('get_info.json', 'org.varlink.service.GetInfo')
call('describe.json', 'org.varlink.service.GetInterfaceDescription', {"interface": "org.bpfbroker.Broker"})
call('acquire.json', B + 'AcquireProgram', {"name": "udp_stats"})
call('acquire_params.json', B + 'AcquireProgram', {"name": "drop_small", "parameters": {"min_len": 8, "strict": 1}})
call('acquire_oneway.json', B + 'AcquireProgram', {"name": "udp_stats"}, oneway=True)
call('list.json', B + 'ListPrograms', {})
call('features.json', B + 'GetFeatures')
call('approve.json', B + 'Approve', {"program": "udp_stats", "users": ["nobody", 1000], "groups": ["adm"], "anyone": False, "polkit": True})
call('revoke.json', B + 'Revoke', {"program": "udp_stats"})
call('reload.json', B + 'Reload')
call('bad_unknown_field.json', B + 'AcquireProgram', {"name": "udp_stats", "extra": True})
call('bad_missing.json', B + 'Revoke', {})
call('bad_negative.json', B + 'AcquireProgram', {"name": "x", "parameters": {"n": -1}})
call('bad_interface.json', 'com.example.Other.Method')
call('bad_member.json', B + 'Frobnicate')

# --- the wire: Varlink frames and the AcquireProgram messages ---------------
# varlink_frames/: byte 0 picks the reader's size limit (3 = 4096 bytes),
# byte 1 seeds the chunk splits, the rest is a stream of NUL-ended frames.
V='varlink_frames'; A='acquire_codec'
os.makedirs(V, exist_ok=True)
os.makedirs(A, exist_ok=True)
def wb(d, name, data):
    with open(os.path.join(d, name), 'wb') as f: f.write(data)
call = '{"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"drop_small"}}'
call_params = '{"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"drop_small","parameters":{"min_len":64}}}'
reply = ('{"parameters":{"info":{"id":5,"instance":"shared","map_access":{"stats":"read"},"name":"udp_stats",'
         '"tag":"0123456789abcdef","type":"socket_filter","version":"1.0.0"},"maps":{"stats":1},"program":0}}')
links = ('{"parameters":{"info":{"attach":"io_uring/io_uring_complete","id":9,"instance":"per-client","map_access":{},'
         '"name":"uring_stats","parameters":{"target_tgid":1234},"tag":"00","type":"tracepoint","version":"1"},'
         '"links":{"on_complete":0},"maps":{}}}')
error = '{"error":"org.bpfbroker.Broker.PermissionDenied","parameters":{"reason":"no grant"}}'
invalid = '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"name"}}'
frames = [call, call_params, reply, links, error, invalid,
          '{"method":"org.bpfbroker.Broker.ListPrograms","oneway":true}',
          '{"method":"org.varlink.service.GetInfo","parameters":{},"more":false}',
          '{"parameters":{},"continues":true}']
wb(V, "one_call", b'\x03\x01' + call.encode() + b'\0')
wb(V, "pipelined", b'\x03\x07' + b''.join(f.encode() + b'\0' for f in frames))
wb(V, "unfinished", b'\x03\x02' + call.encode())
wb(V, "oversized", b'\x01\x05' + b'{"method":"' + b'a' * 40 + b'"}\0' + call.encode() + b'\0')
wb(V, "bad_bom", b'\x03\x03' + b'\xef\xbb\xbf' + call.encode() + b'\0')
wb(V, "bad_duplicate", b'\x03\x04{"method":"a.B","method":"a.C"}\0')
wb(V, "bad_deep", b'\x04\x00' + b'{"parameters":' + b'[' * 40 + b']' * 40 + b'}\0')
for i, f in enumerate(frames):
    wb(A, "frame_%d" % i, f.encode())
wb(A, "bad_bom", b'\xef\xbb\xbf' + call.encode())
wb(A, "bad_unknown_field", call[:-2].encode() + b',"extra":1}}')
wb(A, "bad_utf8", call.replace('drop_small', 'drop\xc0\xafsmall').encode('latin-1'))
wb(A, "reordered", b'{"parameters":{"parameters":{"b":0,"a":18446744073709551615},"name":"x\\u00e9\\ud83d\\ude00"},'
                   b'"method":"org.bpfbroker.Broker.AcquireProgram","oneway":false}')
# found by acquire_codec_fuzzer: nlohmann reads a NUL as the end of input
wb(A, "bad_nul_then_junk", reply.encode() + b'\0\0junk')
