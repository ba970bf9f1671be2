# The build steps every bpfbroker program goes through, shared by the tree's
# own programs (cmake/BpfProgram.cmake) and by the packager's kit installed
# with libbpfbroker-dev (bpfbrokerProgramKit.cmake):
#
#   bpfbroker_bpf_compile(SOURCE f.bpf.c OBJECT f.bpf.o DEPFILE f.d [WERROR]
#                         [INCLUDE_DIRECTORIES dir...] [DEFINES D...])
#   bpfbroker_render_manifest(NAME n TEMPLATE t OBJECT o OUTPUT manifest.json)
#   bpfbroker_sign_manifest(KEY key.pem MANIFEST m SIGNATURE m.sig [DEPENDS ...])
#
# Each adds one custom command. The -P scripts they run sit beside this file
# once installed; in the source tree render_manifest.cmake is in programs/cmake
# (BPFBROKER_RENDER_MANIFEST_SCRIPT, set before including this file).
include_guard(GLOBAL)

set(BPFBROKER_SIGN_MANIFEST_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/sign_manifest.cmake" CACHE INTERNAL "")
if(NOT BPFBROKER_RENDER_MANIFEST_SCRIPT)
  set(BPFBROKER_RENDER_MANIFEST_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/render_manifest.cmake" CACHE INTERNAL "")
endif()

# Not REQUIRED here: find_package(bpfbroker) loads this for client-only users
# too; the functions below refuse to run without the tools.
find_program(BPFBROKER_BPF_CLANG NAMES clang clang-14
  DOC "clang with the BPF backend, for *.bpf.c")
find_program(BPFBROKER_LLVM_STRIP NAMES llvm-strip llvm-strip-14
  DOC "llvm-strip, to drop DWARF from BPF objects (optional)")
find_program(BPFBROKER_OPENSSL NAMES openssl
  DOC "openssl CLI, to sign manifests")

function(bpfbroker_bpf_compile)
  cmake_parse_arguments(PARSE_ARGV 0 arg "WERROR" "SOURCE;OBJECT;DEPFILE" "INCLUDE_DIRECTORIES;DEFINES")
  if(NOT BPFBROKER_BPF_CLANG)
    message(FATAL_ERROR "clang is needed to build BPF programs (Debian: apt install clang llvm)")
  endif()
  # The BTF line info names source files and the compile directory: name
  # them relative to the project, so the same source gives the same object
  # (and hash) wherever it is checked out and built.
  set(cflags -target bpf -O2 -g -Wall -Wextra "-ffile-prefix-map=${CMAKE_SOURCE_DIR}/=" -fdebug-compilation-dir=.)
  # BPF C sees the kernel UAPI headers; on Debian asm/types.h is only under the
  # multiarch directory, which clang -target bpf does not search by itself.
  # A project without C enabled has no CMAKE_LIBRARY_ARCHITECTURE: ask clang.
  set(multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
  if(NOT multiarch)
    execute_process(COMMAND "${BPFBROKER_BPF_CLANG}" -print-multiarch
      OUTPUT_VARIABLE multiarch OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  if(multiarch AND EXISTS "/usr/include/${multiarch}")
    list(APPEND cflags "-I/usr/include/${multiarch}")
  endif()
  if(arg_WERROR)
    list(APPEND cflags -Werror)
  endif()
  foreach(dir IN LISTS arg_INCLUDE_DIRECTORIES)
    list(APPEND cflags "-I${dir}")
  endforeach()
  foreach(def IN LISTS arg_DEFINES)
    list(APPEND cflags "-D${def}")
  endforeach()

  # -g is what makes clang emit BTF; llvm-strip -g then removes only the
  # .debug_* sections, so the object the manifest pins is smaller but still
  # carries .BTF/.BTF.ext for the loader.
  set(strip_command)
  if(BPFBROKER_LLVM_STRIP)
    set(strip_command COMMAND "${BPFBROKER_LLVM_STRIP}" -g "${arg_OBJECT}")
  endif()
  get_filename_component(out_dir "${arg_OBJECT}" DIRECTORY)
  get_filename_component(object_name "${arg_OBJECT}" NAME)
  add_custom_command(
    OUTPUT "${arg_OBJECT}"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${out_dir}"
    COMMAND "${BPFBROKER_BPF_CLANG}" ${cflags} -MD -MF "${arg_DEPFILE}"
            -c "${arg_SOURCE}" -o "${arg_OBJECT}"
    ${strip_command}
    DEPENDS "${arg_SOURCE}"
    DEPFILE "${arg_DEPFILE}"
    COMMENT "Compiling BPF object ${object_name}"
    VERBATIM)
endfunction()

# The hash is taken in a cmake -P step that depends on the object, so the
# manifest (and then the signature) follows every rebuild of the object.
function(bpfbroker_render_manifest)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;TEMPLATE;OBJECT;OUTPUT" "")
  add_custom_command(
    OUTPUT "${arg_OUTPUT}"
    COMMAND "${CMAKE_COMMAND}"
            "-DNAME=${arg_NAME}"
            "-DTEMPLATE=${arg_TEMPLATE}"
            "-DOBJECT=${arg_OBJECT}"
            "-DOUTPUT=${arg_OUTPUT}"
            -P "${BPFBROKER_RENDER_MANIFEST_SCRIPT}"
    DEPENDS "${arg_TEMPLATE}" "${arg_OBJECT}" "${BPFBROKER_RENDER_MANIFEST_SCRIPT}"
    COMMENT "Writing manifest for BPF program ${arg_NAME}"
    VERBATIM)
endfunction()

# Signs in the format the stock openssl tool makes for the key's type.
function(bpfbroker_sign_manifest)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "KEY;MANIFEST;SIGNATURE" "DEPENDS")
  if(NOT BPFBROKER_OPENSSL)
    message(FATAL_ERROR "the openssl tool is needed to sign manifests (Debian: apt install openssl)")
  endif()
  add_custom_command(
    OUTPUT "${arg_SIGNATURE}"
    COMMAND "${CMAKE_COMMAND}"
            "-DOPENSSL=${BPFBROKER_OPENSSL}"
            "-DKEY=${arg_KEY}"
            "-DMANIFEST=${arg_MANIFEST}"
            "-DSIGNATURE=${arg_SIGNATURE}"
            -P "${BPFBROKER_SIGN_MANIFEST_SCRIPT}"
    DEPENDS "${arg_MANIFEST}" "${arg_KEY}" "${BPFBROKER_SIGN_MANIFEST_SCRIPT}" ${arg_DEPENDS}
    COMMENT "Signing ${arg_MANIFEST}"
    VERBATIM)
endfunction()
