# cmake -P script: signs a manifest the way the stock openssl tool does for
# the key's type (policy/signature.h): Ed25519 over the raw bytes, ECDSA and
# RSA over their SHA-256.
#   -DOPENSSL=path -DKEY=key.pem -DMANIFEST=manifest.json -DSIGNATURE=manifest.json.sig
foreach(var IN ITEMS OPENSSL KEY MANIFEST SIGNATURE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "sign_manifest.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND "${OPENSSL}" pkey -in "${KEY}" -noout -text
  OUTPUT_VARIABLE text RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sign_manifest.cmake: ${KEY} is not a private key openssl can read: ${err}")
endif()
if(text MATCHES "^ED25519")
  set(command "${OPENSSL}" pkeyutl -sign -rawin -inkey "${KEY}" -in "${MANIFEST}" -out "${SIGNATURE}")
else()
  set(command "${OPENSSL}" dgst -sha256 -sign "${KEY}" -out "${SIGNATURE}" "${MANIFEST}")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sign_manifest.cmake: openssl could not sign ${MANIFEST} with ${KEY}")
endif()
