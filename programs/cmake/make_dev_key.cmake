# cmake -P script: makes the build tree's development Ed25519 key pair.
#   -DOPENSSL=path -DPRIVATE_KEY=file.pem -DPUBLIC_KEY=file.pub.pem
# The private key is written under a temporary name, made owner-only, and only
# then renamed into place, so an interrupted build never leaves a readable or
# half-written key that later steps would trust.
foreach(var IN ITEMS OPENSSL PRIVATE_KEY PUBLIC_KEY)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "make_dev_key.cmake: -D${var}=... is required")
  endif()
endforeach()

get_filename_component(key_dir "${PRIVATE_KEY}" DIRECTORY)
file(MAKE_DIRECTORY "${key_dir}")
file(CHMOD "${key_dir}" DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)

set(tmp_key "${PRIVATE_KEY}.tmp")
file(REMOVE "${tmp_key}")
file(TOUCH "${tmp_key}")
file(CHMOD "${tmp_key}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE)
execute_process(
  COMMAND "${OPENSSL}" genpkey -algorithm ed25519 -out "${tmp_key}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${tmp_key}")
  message(FATAL_ERROR "openssl genpkey failed (${rc})")
endif()
file(CHMOD "${tmp_key}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE)

execute_process(
  COMMAND "${OPENSSL}" pkey -in "${tmp_key}" -pubout -out "${PUBLIC_KEY}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${tmp_key}")
  message(FATAL_ERROR "openssl pkey -pubout failed (${rc})")
endif()
file(RENAME "${tmp_key}" "${PRIVATE_KEY}")

file(WRITE "${key_dir}/README"
  "Development signing key for this build tree only. It signs the manifests\n"
  "under programs/ so tests and the demo have a trusted signer. Never commit,\n"
  "install or trust it outside a test root.\n")
