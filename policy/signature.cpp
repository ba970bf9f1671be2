// Signatures over manifests with OpenSSL 3.0, in the formats the stock
// `openssl` tool makes (see signature.h). Every OpenSSL object lives in a
// unique_ptr; every failure becomes a Result carrying OpenSSL's first error
// string, and the thread's OpenSSL error queue is left empty on return so a
// stale error can never be blamed on a later, unrelated call.
//
// Key files are read strictly, since a trusted-key directory is the root of
// trust: the input is bounded, and must be exactly one PEM block (optionally
// surrounded by whitespace). Leading text, a second key or any trailing data
// is refused rather than silently ignored, so that what an administrator sees
// in the file is exactly the one key that is trusted.
#include "policy/signature.h"

#include "base/hex.h"

#include <bpfbroker/result.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <climits>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace bpfbroker::policy {

namespace {

// Bounds on caller-controlled input, checked before OpenSSL sees it.
constexpr std::size_t kMaxPemBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxSignatureBytes = 1024;
constexpr int kMinRsaBits = 3072;
// A signature is as long as the modulus, so the 1 KiB signature bound
// caps RSA at 8192 bits; larger keys could never verify anything.
constexpr int kMaxRsaBits = static_cast<int>(kMaxSignatureBytes) * 8;

template <auto Free>
struct OpensslDeleter {
    template <typename T>
    void operator()(T* p) const noexcept
    {
        Free(p);
    }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslDeleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslDeleter<EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO_free>>;

// Empties the thread's OpenSSL error queue on entry and on every exit path:
// OpenSSL's decoders leave errors behind even on success.
class ErrorQueueGuard {
public:
    ErrorQueueGuard() noexcept { ERR_clear_error(); }
    ~ErrorQueueGuard() { ERR_clear_error(); }
    ErrorQueueGuard(const ErrorQueueGuard&) = delete;
    ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

// The first error OpenSSL queued, as text, and an empty queue afterwards.
std::string take_openssl_error()
{
    const unsigned long code = ERR_peek_error();
    std::string text;
    if (code != 0) {
        std::array<char, 256> buf{};
        ERR_error_string_n(code, buf.data(), buf.size());
        text = buf.data();
    } else {
        text = "no OpenSSL error reported";
    }
    ERR_clear_error();
    return text;
}

// "<what>: <openssl error>"
std::string with_openssl_error(std::string what)
{
    what += ": ";
    what += take_openssl_error();
    return what;
}

const unsigned char* bytes(std::string_view s) noexcept
{
    return reinterpret_cast<const unsigned char*>(s.data());
}

// A read-only memory BIO over `text` (which the caller has bounded).
BioPtr memory_bio(std::string_view text)
{
    return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Everything written to a memory BIO, as a string.
std::string drain(BIO* bio)
{
    std::string out(BIO_ctrl_pending(bio), '\0');
    if (out.empty())
        return out;
    const int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

// Never prompts (OpenSSL's default callback would read the terminal); notes
// that a pass phrase was asked for so the caller can say the key is encrypted.
int refuse_pass_phrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) noexcept
{
    if (asked != nullptr)
        *static_cast<bool*>(asked) = true;
    return -1;
}

bool is_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

struct PemBlock {
    std::string_view label;  // e.g. "PUBLIC KEY"
    std::string_view text;   // the whole block, BEGIN line to END line
};

// Checks that `input` is exactly one PEM block, give or take surrounding
// whitespace. `what` names the expected content in messages.
Result<PemBlock> single_pem_block(std::string_view input, std::string_view what)
{
    static constexpr std::string_view kBegin = "-----BEGIN ";
    static constexpr std::string_view kDashes = "-----";
    const std::string_view text = trim(input);
    if (text.empty())
        return fail(ErrorCode::KeyInvalid, std::string(what) + " is empty");
    if (text.substr(0, kBegin.size()) != kBegin)
        return fail(ErrorCode::KeyInvalid,
                    std::string(what) + " is not PEM: it does not start with \"-----BEGIN \"");
    const std::size_t label_end = text.find(kDashes, kBegin.size());
    const std::size_t line_end = text.find('\n');
    if (label_end == std::string_view::npos || (line_end != std::string_view::npos && label_end > line_end))
        return fail(ErrorCode::KeyInvalid, std::string(what) + " has a malformed PEM BEGIN line");
    const std::string_view label = text.substr(kBegin.size(), label_end - kBegin.size());

    const std::string end_line = "-----END " + std::string(label) + "-----";
    const std::size_t end_pos = text.find(end_line);
    if (end_pos == std::string_view::npos)
        return fail(ErrorCode::KeyInvalid,
                    std::string(what) + " has no \"" + end_line + "\" line");
    const std::string_view block = text.substr(0, end_pos + end_line.size());
    if (block.find(kBegin, kBegin.size()) != std::string_view::npos)
        return fail(ErrorCode::KeyInvalid,
                    std::string(what) + " has a PEM block inside another");
    const std::string_view rest = text.substr(block.size());
    if (!rest.empty()) {
        if (rest.find(kBegin) != std::string_view::npos)
            return fail(ErrorCode::KeyInvalid,
                        std::string(what) + " holds more than one PEM block; put one key in each file");
        return fail(ErrorCode::KeyInvalid,
                    std::string(what) + " has data after \"" + end_line + "\"");
    }
    return PemBlock{label, block};
}

bool ends_with(std::string_view s, std::string_view suffix) noexcept
{
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

struct KeyInfo {
    KeyType type;
    int bits;
};

// The one place that decides which keys are acceptable, for public and
// private keys alike.
Result<KeyInfo> classify_key(EVP_PKEY* pkey)
{
    const int bits = EVP_PKEY_get_bits(pkey);
    if (EVP_PKEY_is_a(pkey, "ED25519"))
        return KeyInfo{KeyType::Ed25519, bits};

    if (EVP_PKEY_is_a(pkey, "EC")) {
        // Explicit curve parameters are refused even when they describe
        // P-256: tools write named curves, and explicit ones have been a
        // source of parsing bugs.
        std::array<char, 64> encoding{};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING, encoding.data(),
                                           encoding.size(), &len) != 1 ||
            std::string_view(encoding.data(), len) != OSSL_PKEY_EC_ENCODING_GROUP) {
            ERR_clear_error();
            return fail(ErrorCode::KeyInvalid,
                        "ECDSA key with explicit curve parameters; only the named curve P-256 is accepted");
        }
        std::array<char, 80> group{};
        len = 0;
        if (EVP_PKEY_get_group_name(pkey, group.data(), group.size(), &len) != 1) {
            return fail(ErrorCode::KeyInvalid,
                        with_openssl_error("ECDSA key without a named curve"));
        }
        const std::string name(group.data(), len);
        if (OBJ_txt2nid(name.c_str()) != NID_X9_62_prime256v1) {
            ERR_clear_error();
            return fail(ErrorCode::KeyInvalid, "ECDSA curve " + name + " is not P-256");
        }
        return KeyInfo{KeyType::EcdsaP256, bits};
    }

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (bits < kMinRsaBits)
            return fail(ErrorCode::KeyInvalid, "RSA key has " + std::to_string(bits) +
                                                   " bits; at least " + std::to_string(kMinRsaBits) +
                                                   " are required");
        if (bits > kMaxRsaBits)
            return fail(ErrorCode::KeyInvalid, "RSA key has " + std::to_string(bits) +
                                                   " bits; at most " + std::to_string(kMaxRsaBits) +
                                                   " are supported");
        return KeyInfo{KeyType::Rsa, bits};
    }

    const char* name = EVP_PKEY_get0_type_name(pkey);
    std::string type = name != nullptr ? name : "unknown";
    if (EVP_PKEY_is_a(pkey, "RSA-PSS"))
        type = "RSA-PSS (id-RSASSA-PSS)";
    return fail(ErrorCode::KeyInvalid,
                "key type " + type + " is not accepted; use Ed25519, ECDSA P-256 or RSA >= 3072 bits");
}

// Cheap structural checks OpenSSL offers on a public key (RSA modulus odd and
// composite, exponent odd; EC point on the curve).
Result<void> check_public_key(EVP_PKEY* pkey)
{
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    if (!ctx)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot check the public key"));
    if (EVP_PKEY_public_check(ctx.get()) != 1)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("the public key is not valid"));
    return {};
}

// Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo; empty on failure.
std::string key_id_of(EVP_PKEY* pkey)
{
    const int len = i2d_PUBKEY(pkey, nullptr);
    if (len <= 0)
        return {};
    std::string der(static_cast<std::size_t>(len), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_PUBKEY(pkey, &out) != len)
        return {};
    return sha256_hex(der);
}

std::string public_pem_of(EVP_PKEY* pkey)
{
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey) != 1)
        return {};
    return drain(bio.get());
}

// The md for EVP_Digest{Sign,Verify}Init: Ed25519 signs the raw message.
const EVP_MD* digest_for(KeyType type) noexcept
{
    return type == KeyType::Ed25519 ? nullptr : EVP_sha256();
}

// One verification attempt; `rsa_padding` is 0 for non-RSA keys.
bool verify_once(EVP_PKEY* pkey, KeyType type, int rsa_padding, std::string_view data,
                 std::string_view signature)
{
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx)
        return false;
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    if (EVP_DigestVerifyInit(ctx.get(), &pctx, digest_for(type), nullptr, pkey) != 1)
        return false;
    if (rsa_padding != 0) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, rsa_padding) != 1)
            return false;
        if (rsa_padding == RSA_PKCS1_PSS_PADDING &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)
            return false;
    }
    return EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(data),
                            data.size()) == 1;
}

// Reads an unencrypted private key (PKCS#8 or traditional EC/RSA PEM).
Result<PkeyPtr> read_private_key(std::string_view pem)
{
    if (pem.size() > kMaxPemBytes)
        return fail(ErrorCode::KeyInvalid, "private key file is " + std::to_string(pem.size()) +
                                               " bytes, more than the " +
                                               std::to_string(kMaxPemBytes) + " allowed");
    auto block = single_pem_block(pem, "private key");
    if (!block)
        return fail(std::move(block).error());
    const std::string_view label = block->label;
    static constexpr std::string_view kEncryptedHint =
        "encrypted private keys are not supported; decrypt it first (openssl pkey -in KEY -out PLAIN)";
    // "Proc-Type:" cannot occur in base64, so this only matches the header
    // of an encrypted traditional key.
    const bool encrypted_header = block->text.find("Proc-Type:") != std::string_view::npos &&
                                  block->text.find("ENCRYPTED") != std::string_view::npos;
    if (label == "ENCRYPTED PRIVATE KEY" || encrypted_header)
        return fail(ErrorCode::KeyInvalid, std::string(kEncryptedHint));
    if (label != "PRIVATE KEY" && label != "EC PRIVATE KEY" && label != "RSA PRIVATE KEY") {
        std::string message = "expected an unencrypted private key (-----BEGIN PRIVATE KEY-----), found -----BEGIN ";
        message += label;
        message += "-----";
        return fail(ErrorCode::KeyInvalid, std::move(message));
    }

    BioPtr bio = memory_bio(block->text);
    if (!bio)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot read the private key"));
    bool pass_phrase_asked = false;
    PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_pass_phrase, &pass_phrase_asked));
    if (pass_phrase_asked) {
        ERR_clear_error();
        return fail(ErrorCode::KeyInvalid, std::string(kEncryptedHint));
    }
    if (!pkey)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot parse the private key"));
    return pkey;
}

}  // namespace

std::string_view key_type_name(KeyType type) noexcept
{
    switch (type) {
    case KeyType::Ed25519:
        return "ed25519";
    case KeyType::EcdsaP256:
        return "ecdsa-p256";
    case KeyType::Rsa:
        return "rsa";
    }
    return "unknown";
}

std::string sha256_hex(std::string_view data)
{
    ErrorQueueGuard guard;
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int md_len = 0;
    if (EVP_Digest(data.data(), data.size(), md.data(), &md_len, EVP_sha256(), nullptr) != 1)
        return {};  // only on allocation failure; an empty id matches nothing
    return hex_encode(md.data(), md_len);
}

// ---------------------------------------------------------------- PublicKey

struct PublicKey::Impl {
    PkeyPtr pkey;
};

PublicKey::PublicKey(std::unique_ptr<Impl> impl, KeyType type, int bits, std::string key_id)
    : impl_(std::move(impl)), type_(type), bits_(bits), key_id_(std::move(key_id))
{
}
PublicKey::PublicKey(PublicKey&&) noexcept = default;
PublicKey& PublicKey::operator=(PublicKey&&) noexcept = default;
PublicKey::~PublicKey() = default;

Result<PublicKey> PublicKey::from_pem(std::string_view pem)
{
    ErrorQueueGuard guard;
    if (pem.size() > kMaxPemBytes)
        return fail(ErrorCode::KeyInvalid, "public key file is " + std::to_string(pem.size()) +
                                               " bytes, more than the " +
                                               std::to_string(kMaxPemBytes) + " allowed");
    auto block = single_pem_block(pem, "public key");
    if (!block)
        return fail(std::move(block).error());
    if (block->label != "PUBLIC KEY") {
        std::string message;
        if (ends_with(block->label, "PRIVATE KEY"))
            message = "this is a private key (-----BEGIN " + std::string(block->label) +
                      "-----); give the public key (openssl pkey -in KEY -pubout)";
        else
            message = "expected a -----BEGIN PUBLIC KEY----- block (SubjectPublicKeyInfo), found -----BEGIN " +
                      std::string(block->label) + "-----";
        return fail(ErrorCode::KeyInvalid, std::move(message));
    }

    BioPtr bio = memory_bio(block->text);
    if (!bio)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot read the public key"));
    PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, refuse_pass_phrase, nullptr));
    if (!pkey)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot parse the public key"));

    auto info = classify_key(pkey.get());
    if (!info)
        return fail(std::move(info).error());
    if (auto checked = check_public_key(pkey.get()); !checked)
        return fail(std::move(checked).error());
    std::string id = key_id_of(pkey.get());
    if (id.empty())
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot encode the public key"));

    auto impl = std::make_unique<Impl>();
    impl->pkey = std::move(pkey);
    return PublicKey(std::move(impl), info->type, info->bits, std::move(id));
}

std::string PublicKey::to_pem() const
{
    ErrorQueueGuard guard;
    if (!impl_)
        return {};
    return public_pem_of(impl_->pkey.get());
}

Result<void> PublicKey::verify(std::string_view data, std::string_view signature) const
{
    ErrorQueueGuard guard;
    if (!impl_)
        return fail(ErrorCode::SignatureInvalid, "no key to verify with (moved-from PublicKey)");
    if (signature.empty())
        return fail(ErrorCode::SignatureInvalid, "the signature is empty");
    if (signature.size() > kMaxSignatureBytes)
        return fail(ErrorCode::SignatureInvalid,
                    "the signature is " + std::to_string(signature.size()) +
                        " bytes, more than the " + std::to_string(kMaxSignatureBytes) + " allowed");

    EVP_PKEY* pkey = impl_->pkey.get();
    bool ok = false;
    if (type_ == KeyType::Rsa) {
        // The openssl tool signs PKCS#1 v1.5 by default and PSS on request.
        ok = verify_once(pkey, type_, RSA_PKCS1_PADDING, data, signature);
        if (!ok) {
            ERR_clear_error();
            ok = verify_once(pkey, type_, RSA_PKCS1_PSS_PADDING, data, signature);
        }
    } else {
        ok = verify_once(pkey, type_, 0, data, signature);
    }
    if (!ok) {
        ERR_clear_error();  // "bad signature" and friends say nothing more useful
        return fail(ErrorCode::SignatureInvalid, "signature does not match " +
                                                     std::string(key_type_name(type_)) + " key " +
                                                     key_id_);
    }
    return {};
}

// --------------------------------------------------------------- PrivateKey

struct PrivateKey::Impl {
    PkeyPtr pkey;
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl, KeyType type)
    : impl_(std::move(impl)), type_(type)
{
}
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;
PrivateKey::~PrivateKey() = default;

Result<PrivateKey> PrivateKey::generate(KeyType type, int rsa_bits)
{
    ErrorQueueGuard guard;
    PkeyPtr pkey;
    switch (type) {
    case KeyType::Ed25519:
        pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
        break;
    case KeyType::EcdsaP256:
        pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
        break;
    case KeyType::Rsa:
        if (rsa_bits < kMinRsaBits || rsa_bits > kMaxRsaBits)
            return fail(ErrorCode::KeyInvalid,
                        "RSA key size " + std::to_string(rsa_bits) + " bits is outside " +
                            std::to_string(kMinRsaBits) + ".." + std::to_string(kMaxRsaBits));
        pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits)));
        break;
    default:
        return fail(ErrorCode::KeyInvalid, "unknown key type");
    }
    if (!pkey)
        return fail(ErrorCode::KeyInvalid,
                    with_openssl_error("cannot generate " + std::string(key_type_name(type)) + " key"));
    auto impl = std::make_unique<Impl>();
    impl->pkey = std::move(pkey);
    return PrivateKey(std::move(impl), type);
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem)
{
    ErrorQueueGuard guard;
    auto pkey = read_private_key(pem);
    if (!pkey)
        return fail(std::move(pkey).error());
    auto info = classify_key(pkey->get());
    if (!info)
        return fail(std::move(info).error());
    auto impl = std::make_unique<Impl>();
    impl->pkey = std::move(*pkey);
    return PrivateKey(std::move(impl), info->type);
}

std::string PrivateKey::to_pem() const
{
    ErrorQueueGuard guard;
    if (!impl_)
        return {};
    // A secure-memory BIO is wiped when freed; the returned string is the
    // caller's to protect.
    BioPtr bio(BIO_new(BIO_s_secmem()));
    if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0,
                                              nullptr, nullptr) != 1)
        return {};
    return drain(bio.get());
}

std::string PrivateKey::public_key_pem() const
{
    ErrorQueueGuard guard;
    if (!impl_)
        return {};
    return public_pem_of(impl_->pkey.get());
}

Result<PublicKey> PrivateKey::public_key() const
{
    // Through PEM so that the public half passes the same checks as any
    // trusted key file.
    const std::string pem = public_key_pem();
    if (pem.empty())
        return fail(ErrorCode::KeyInvalid, "cannot export the public key");
    return PublicKey::from_pem(pem);
}

Result<std::string> PrivateKey::sign(std::string_view data) const
{
    ErrorQueueGuard guard;
    if (!impl_)
        return fail(ErrorCode::KeyInvalid, "no key to sign with (moved-from PrivateKey)");
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx)
        return fail(ErrorCode::Internal, with_openssl_error("cannot sign"));
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    if (EVP_DigestSignInit(ctx.get(), &pctx, digest_for(type_), nullptr, impl_->pkey.get()) != 1)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot sign with this key"));
    if (type_ == KeyType::Rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        return fail(ErrorCode::KeyInvalid, with_openssl_error("cannot select PKCS#1 v1.5 padding"));
    // Ed25519 is one-shot only; first ask for the maximum size, then sign.
    std::size_t size = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &size, bytes(data), data.size()) != 1)
        return fail(ErrorCode::Internal, with_openssl_error("cannot size the signature"));
    std::string signature(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       bytes(data), data.size()) != 1)
        return fail(ErrorCode::Internal, with_openssl_error("signing failed"));
    signature.resize(size);  // ECDSA DER is usually shorter than the maximum
    return signature;
}

}  // namespace bpfbroker::policy
