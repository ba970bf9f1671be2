// Signatures over manifests, in exactly the formats the stock `openssl` tool
// makes, so a distribution can sign with its own infrastructure:
//   Ed25519:        openssl pkeyutl -sign -rawin -inkey key.pem -in F -out F.sig
//   ECDSA P-256/RSA: openssl dgst -sha256 -sign key.pem -out F.sig F
// RSA signatures are accepted as PKCS#1 v1.5 or PSS (any salt length).
// A key id is the lower-case hex SHA-256 of the key's DER SubjectPublicKeyInfo.
#pragma once

#include <bpfbroker/result.h>

#include <memory>
#include <string>
#include <string_view>

namespace bpfbroker::policy {

enum class KeyType { Ed25519, EcdsaP256, Rsa };

std::string_view key_type_name(KeyType type) noexcept;  // "ed25519", "ecdsa-p256", "rsa"

// Lower-case hex SHA-256 of arbitrary bytes.
std::string sha256_hex(std::string_view bytes);

// A trusted public key. Only Ed25519, ECDSA on P-256 (named curve) and RSA
// >= 3072 bits load; anything else is KeyInvalid with the reason.
class PublicKey {
public:
    // `pem` must be exactly one "-----BEGIN PUBLIC KEY-----" block
    // (SubjectPublicKeyInfo), give or take surrounding whitespace, and at most
    // 64 KiB: leading text, a second block or trailing data is KeyInvalid, so
    // a trusted-key file never holds more than the one key it appears to.
    // RSA keys are also capped at 8192 bits, the size of the largest
    // signature verify() accepts (1 KiB).
    static Result<PublicKey> from_pem(std::string_view pem);

    PublicKey(PublicKey&&) noexcept;
    PublicKey& operator=(PublicKey&&) noexcept;
    ~PublicKey();

    [[nodiscard]] KeyType type() const noexcept { return type_; }
    [[nodiscard]] int bits() const noexcept { return bits_; }
    [[nodiscard]] const std::string& key_id() const noexcept { return key_id_; }
    [[nodiscard]] std::string to_pem() const;  // empty only when moved from

    // Ok when `signature` is a valid signature of `data` by this key;
    // SignatureInvalid otherwise (never throws, never partially succeeds).
    [[nodiscard]] Result<void> verify(std::string_view data, std::string_view signature) const;

private:
    struct Impl;
    PublicKey(std::unique_ptr<Impl> impl, KeyType type, int bits, std::string key_id);
    std::unique_ptr<Impl> impl_;
    KeyType type_;
    int bits_;
    std::string key_id_;
};

// A signing key, for bpfbrokerctl keygen/sign and for tests.
class PrivateKey {
public:
    // rsa_bits is used for KeyType::Rsa only (minimum 3072).
    static Result<PrivateKey> generate(KeyType type, int rsa_bits = 3072);
    // One unencrypted PEM block, PKCS#8 ("PRIVATE KEY") or traditional
    // ("EC PRIVATE KEY", "RSA PRIVATE KEY"), under the same rules as
    // PublicKey::from_pem; an encrypted key is KeyInvalid, never prompted for.
    static Result<PrivateKey> from_pem(std::string_view pem);

    PrivateKey(PrivateKey&&) noexcept;
    PrivateKey& operator=(PrivateKey&&) noexcept;
    ~PrivateKey();

    [[nodiscard]] KeyType type() const noexcept { return type_; }
    // Both empty only when moved from.
    [[nodiscard]] std::string to_pem() const;             // PKCS#8 PEM, unencrypted
    [[nodiscard]] std::string public_key_pem() const;     // SubjectPublicKeyInfo PEM
    [[nodiscard]] Result<PublicKey> public_key() const;

    // Signs in the openssl-tool format for this key type (see top of file);
    // RSA signs with PKCS#1 v1.5.
    [[nodiscard]] Result<std::string> sign(std::string_view data) const;

private:
    struct Impl;
    PrivateKey(std::unique_ptr<Impl> impl, KeyType type);
    std::unique_ptr<Impl> impl_;
    KeyType type_;
};

}  // namespace bpfbroker::policy
