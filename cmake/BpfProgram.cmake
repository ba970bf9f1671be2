# bpfbroker_add_program(NAME ...): builds one shipped BPF program the way a
# package would ship it, into ${CMAKE_BINARY_DIR}/programs/NAME/, a mirror of
# usr/lib/bpfbroker/programs.d/NAME/:
#
#   NAME.bpf.o          clang -target bpf, DWARF stripped, BTF kept
#   manifest.json       the source template with @OBJECT_SHA256@ filled in
#   manifest.json.sig   Ed25519 over the exact manifest bytes (dev key)
#
# The signing key is a development key made once per build tree in
# ${CMAKE_BINARY_DIR}/dev-keys/. It exists so tests and the demo have a trusted
# signer; it is never committed, never installed, and no install() rule here
# ships a dev-signed manifest.
#
# What other folders can use (whatever order they are configured in):
#   target bpfbroker_programs          builds every program (part of `all`)
#   target bpfbroker_program_paths     INTERFACE; compile definitions
#                                      BPFBROKER_PROGRAMS_DIR, BPFBROKER_DEV_KEY_DIR
#   property BPFBROKER_PROGRAM_NAMES   on bpfbroker_programs and GLOBAL
#   cache BPFBROKER_PROGRAMS_DIR, BPFBROKER_DEV_KEY_DIR   (INTERNAL)
include_guard(GLOBAL)

set(BPFBROKER_PROGRAMS_DIR "${CMAKE_BINARY_DIR}/programs" CACHE INTERNAL
  "Build-tree mirror of usr/lib/bpfbroker/programs.d")
set(BPFBROKER_DEV_KEY_DIR "${CMAKE_BINARY_DIR}/dev-keys" CACHE INTERNAL
  "Development signing key pair (never installed)")

# The -P helper scripts live with the programs they serve (render_manifest
# is also installed beside the kit, which finds it there).
set(_bpfbroker_program_scripts "${CMAKE_CURRENT_LIST_DIR}/../programs/cmake")
set(BPFBROKER_RENDER_MANIFEST_SCRIPT "${_bpfbroker_program_scripts}/render_manifest.cmake" CACHE INTERNAL "")
include("${CMAKE_CURRENT_LIST_DIR}/BpfCompile.cmake")

if(NOT TARGET bpfbroker_programs)
  add_custom_target(bpfbroker_programs ALL)
  set_property(TARGET bpfbroker_programs PROPERTY BPFBROKER_PROGRAM_NAMES "")

  add_library(bpfbroker_program_paths INTERFACE)
  target_compile_definitions(bpfbroker_program_paths INTERFACE
    BPFBROKER_PROGRAMS_DIR="${BPFBROKER_PROGRAMS_DIR}"
    BPFBROKER_DEV_KEY_DIR="${BPFBROKER_DEV_KEY_DIR}")

  # One key pair per build tree. Made at build time, not configure time, so
  # configuring has no side effects; the output rule means it is made once and
  # remade (re-signing everything) only if someone deletes it.
  set(_key "${BPFBROKER_DEV_KEY_DIR}/dev-signing-key.pem")
  set(_pub "${BPFBROKER_DEV_KEY_DIR}/dev-signing-key.pub.pem")
  add_custom_command(
    OUTPUT "${_key}" "${_pub}"
    COMMAND "${CMAKE_COMMAND}"
            "-DOPENSSL=${BPFBROKER_OPENSSL}"
            "-DPRIVATE_KEY=${_key}"
            "-DPUBLIC_KEY=${_pub}"
            -P "${_bpfbroker_program_scripts}/make_dev_key.cmake"
    DEPENDS "${_bpfbroker_program_scripts}/make_dev_key.cmake"
    COMMENT "Generating the development Ed25519 signing key"
    VERBATIM)
  add_custom_target(bpfbroker_dev_key DEPENDS "${_key}" "${_pub}")
  unset(_key)
  unset(_pub)
endif()

# bpfbroker_add_program(NAME [DEFINES D...] [INCLUDE_DIRECTORIES DIR...])
#   Expects ${CMAKE_CURRENT_SOURCE_DIR}/NAME/NAME.bpf.c and .../NAME/manifest.json.
#   DEFINES become -D flags for the BPF compile (build-time constants).
function(bpfbroker_add_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "DEFINES;INCLUDE_DIRECTORIES")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "bpfbroker_add_program(${name}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
  endif()

  set(source "${CMAKE_CURRENT_SOURCE_DIR}/${name}/${name}.bpf.c")
  set(template "${CMAKE_CURRENT_SOURCE_DIR}/${name}/manifest.json")
  foreach(required IN ITEMS "${source}" "${template}")
    if(NOT EXISTS "${required}")
      message(FATAL_ERROR "bpfbroker_add_program(${name}): missing ${required}")
    endif()
  endforeach()

  set(out_dir "${BPFBROKER_PROGRAMS_DIR}/${name}")
  set(object "${out_dir}/${name}.bpf.o")
  set(manifest "${out_dir}/manifest.json")
  set(signature "${out_dir}/manifest.json.sig")
  set(key "${BPFBROKER_DEV_KEY_DIR}/dev-signing-key.pem")
  # The dependency file stays out of out_dir, which must hold exactly what
  # programs.d/NAME holds.
  set(depfile "${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/bpfbroker_program_${name}.dir/${name}.bpf.o.d")

  set(werror)
  if(BPFBROKER_WERROR)
    set(werror WERROR)
  endif()
  bpfbroker_bpf_compile(SOURCE "${source}" OBJECT "${object}" DEPFILE "${depfile}" ${werror}
    INCLUDE_DIRECTORIES ${arg_INCLUDE_DIRECTORIES} DEFINES ${arg_DEFINES})
  bpfbroker_render_manifest(NAME "${name}" TEMPLATE "${template}" OBJECT "${object}" OUTPUT "${manifest}")
  # The key file belongs to bpfbroker_dev_key (possibly in another directory):
  # the target dependency orders it, the file dependency re-signs on a new key.
  bpfbroker_sign_manifest(KEY "${key}" MANIFEST "${manifest}" SIGNATURE "${signature}")

  add_custom_target(bpfbroker_program_${name}
    DEPENDS "${object}" "${manifest}" "${signature}"
    SOURCES "${source}" "${template}")
  add_dependencies(bpfbroker_program_${name} bpfbroker_dev_key)
  add_dependencies(bpfbroker_programs bpfbroker_program_${name})

  set_property(TARGET bpfbroker_programs APPEND PROPERTY BPFBROKER_PROGRAM_NAMES "${name}")
  set_property(GLOBAL APPEND PROPERTY BPFBROKER_PROGRAM_NAMES "${name}")
endfunction()
