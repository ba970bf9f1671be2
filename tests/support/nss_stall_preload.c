/* An LD_PRELOAD library for the e2e test of a stalled user database
 * (tests/e2e/name_lookup_stall_test.cpp): getpwuid_r of the uid named in
 * BPFBROKER_TEST_STALL_UID blocks, as a lookup against a dead LDAP server
 * would, until the file BPFBROKER_TEST_STALL_RELEASE exists; it creates
 * BPFBROKER_TEST_STALL_MARK first, so the test knows the stall has begun.
 * Every other lookup goes straight to libc's. The system's NSS cannot be
 * made to stall for one uid without breaking the machine for everyone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*getpwuid_r_fn)(uid_t, struct passwd*, char*, size_t, struct passwd**);

static void stall_if_asked(uid_t uid)
{
    const char* target = getenv("BPFBROKER_TEST_STALL_UID");
    const char* mark = getenv("BPFBROKER_TEST_STALL_MARK");
    const char* release = getenv("BPFBROKER_TEST_STALL_RELEASE");
    if (!target || !mark || !release || (uid_t)strtoul(target, NULL, 10) != uid)
        return;
    int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    const struct timespec tick = {0, 10 * 1000 * 1000};
    while (access(release, F_OK) != 0)
        nanosleep(&tick, NULL);
}

int getpwuid_r(uid_t uid, struct passwd* pwd, char* buf, size_t buflen, struct passwd** result)
{
    static getpwuid_r_fn real;
    if (!real)
        real = (getpwuid_r_fn)dlsym(RTLD_NEXT, "getpwuid_r");
    stall_if_asked(uid);
    return real(uid, pwd, buf, buflen, result);
}
