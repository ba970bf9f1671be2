# The packager's kit, installed with libbpfbroker-dev and loaded by
# find_package(bpfbroker). One call builds a program package for bpfbrokerd:
#
#   bpfbroker_add_program(NAME
#     SOURCE <file.bpf.c> MANIFEST <manifest template>
#     [SIGNING_KEY <private key PEM>]         default: -DBPFBROKER_SIGNING_KEY or $ENV{BPFBROKER_SIGNING_KEY}
#     [DESTINATION <dir>]                     default: lib/bpfbroker/programs.d (under the prefix)
#     [INCLUDE_DIRECTORIES <dir>...] [DEFINES <D>...])
#
# It compiles SOURCE with clang for BPF (reproducibly: no build path in the
# object), fills @OBJECT_SHA256@ in the template, checks the manifest with
# the daemon's own parser (bpfbrokerctl check-manifest), signs it in the
# openssl formats the daemon accepts, and installs NAME/ (object,
# manifest.json, manifest.json.sig) under DESTINATION. The template's
# "object" must be NAME.bpf.o. Keys: Ed25519, ECDSA P-256 or RSA >= 3072.
include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/BpfCompile.cmake")

find_program(BPFBROKER_CTL NAMES bpfbrokerctl
  DOC "bpfbrokerctl, whose check-manifest runs the daemon's manifest parser")
set(BPFBROKER_SIGNING_KEY "$ENV{BPFBROKER_SIGNING_KEY}" CACHE FILEPATH
  "Private key (PEM) that signs the programs of bpfbroker_add_program() without SIGNING_KEY")

function(bpfbroker_add_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE;MANIFEST;SIGNING_KEY;DESTINATION" "INCLUDE_DIRECTORIES;DEFINES")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "bpfbroker_add_program(${name}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT BPFBROKER_CTL)
    message(FATAL_ERROR "bpfbroker_add_program(${name}): bpfbrokerctl not found (package bpfbroker, or -DBPFBROKER_CTL=path)")
  endif()
  foreach(required IN ITEMS SOURCE MANIFEST)
    if(NOT arg_${required})
      message(FATAL_ERROR "bpfbroker_add_program(${name}): ${required} is required")
    endif()
  endforeach()
  set(key "${arg_SIGNING_KEY}")
  if(NOT key)
    set(key "${BPFBROKER_SIGNING_KEY}")
  endif()
  if(NOT key)
    message(FATAL_ERROR "bpfbroker_add_program(${name}): no signing key: give SIGNING_KEY, "
      "-DBPFBROKER_SIGNING_KEY=key.pem or the environment variable BPFBROKER_SIGNING_KEY")
  endif()
  if(NOT arg_DESTINATION)
    set(arg_DESTINATION lib/bpfbroker/programs.d)
  endif()
  foreach(path IN ITEMS SOURCE MANIFEST)
    get_filename_component(arg_${path} "${arg_${path}}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  endforeach()
  get_filename_component(key "${key}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")

  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/bpfbroker-programs/${name}")
  set(object "${out_dir}/${name}.bpf.o")
  set(manifest "${out_dir}/manifest.json")
  set(signature "${out_dir}/manifest.json.sig")
  # Build bookkeeping stays out of out_dir, which holds exactly what is installed.
  set(state_dir "${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/bpfbroker_program_${name}.dir")
  set(checked "${state_dir}/manifest.checked")

  bpfbroker_bpf_compile(SOURCE "${arg_SOURCE}" OBJECT "${object}" DEPFILE "${state_dir}/${name}.bpf.o.d"
    INCLUDE_DIRECTORIES ${arg_INCLUDE_DIRECTORIES} DEFINES ${arg_DEFINES})
  bpfbroker_render_manifest(NAME "${name}" TEMPLATE "${arg_MANIFEST}" OBJECT "${object}" OUTPUT "${manifest}")
  add_custom_command(
    OUTPUT "${checked}"
    COMMAND "${BPFBROKER_CTL}" check-manifest "${manifest}"
    COMMAND "${CMAKE_COMMAND}" -E touch "${checked}"
    DEPENDS "${manifest}"
    COMMENT "Checking the manifest of ${name} with the daemon's parser"
    VERBATIM)
  bpfbroker_sign_manifest(KEY "${key}" MANIFEST "${manifest}" SIGNATURE "${signature}" DEPENDS "${checked}")

  add_custom_target(bpfbroker_program_${name} ALL
    DEPENDS "${object}" "${manifest}" "${checked}" "${signature}"
    SOURCES "${arg_SOURCE}" "${arg_MANIFEST}")
  install(FILES "${object}" "${manifest}" "${signature}" DESTINATION "${arg_DESTINATION}/${name}")
endfunction()
