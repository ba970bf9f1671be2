# cmake -P script: writes a program's manifest.json from its source template,
# replacing @OBJECT_SHA256@ with the lower-case hex SHA-256 of the built object.
#   -DNAME=udp_stats -DTEMPLATE=src/manifest.json -DOBJECT=x.bpf.o -DOUTPUT=manifest.json
# It also refuses templates that disagree with the build (name, object file),
# because the daemon would reject them later with a far less obvious error.
foreach(var IN ITEMS NAME TEMPLATE OBJECT OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "render_manifest.cmake: -D${var}=... is required")
  endif()
endforeach()

set(placeholder "@OBJECT_SHA256@")
file(READ "${TEMPLATE}" text)
string(FIND "${text}" "${placeholder}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${TEMPLATE}: object_sha256 must be the placeholder ${placeholder}")
endif()

string(JSON manifest_name ERROR_VARIABLE json_error GET "${text}" name)
if(json_error)
  message(FATAL_ERROR "${TEMPLATE}: not a JSON manifest: ${json_error}")
endif()
if(NOT manifest_name STREQUAL NAME)
  message(FATAL_ERROR "${TEMPLATE}: name is \"${manifest_name}\", expected \"${NAME}\"")
endif()
string(JSON manifest_object GET "${text}" object)
get_filename_component(object_file "${OBJECT}" NAME)
if(NOT manifest_object STREQUAL object_file)
  message(FATAL_ERROR "${TEMPLATE}: object is \"${manifest_object}\", expected \"${object_file}\"")
endif()

# file(SHA256) prints lower-case hex, the form the manifest format requires.
file(SHA256 "${OBJECT}" object_sha256)
string(REPLACE "${placeholder}" "${object_sha256}" text "${text}")

# Always rewritten (never "only if different"): an output older than its
# inputs would make the build re-run this step forever.
file(WRITE "${OUTPUT}" "${text}")
