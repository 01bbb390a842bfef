/* LD_PRELOAD helper for crash forensics: on SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGABRT, append the signal, the
 * faulting address, the native backtrace of the crashing thread and the process's mapped libraries to
 * $SEGV_LOG, then die of the same signal (so the exit status stays 128+N).
 *
 * Why a file and not stderr: llama-cpp-python points fd 2 at /dev/null while a model loads, so a crash
 * there leaves no trace on stderr (Python's faulthandler included).
 *
 *   gcc -shared -fPIC -O1 -o build/segv_backtrace.so bench/gpu/segv_backtrace.c
 *   SEGV_LOG=/tmp/crash.txt LD_PRELOAD=$PWD/build/segv_backtrace.so python3 ...
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_fatal(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  const char *path = getenv("SEGV_LOG");
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
  if (fd < 0) fd = 2;
  char line[160];
  int n = snprintf(line, sizeof line, "signal %d (%s) at address %p in thread %ld of pid %d\n", sig,
                   strsignal(sig), si ? si->si_addr : 0, (long)syscall(SYS_gettid), (int)getpid());
  if (write(fd, line, n) < 0) {}
  void *frames[64];
  int k = backtrace(frames, 64);
  backtrace_symbols_fd(frames, k, fd);
  if (write(fd, "--- maps (executable) ---\n", 26) < 0) {}
  int m = open("/proc/self/maps", O_RDONLY);
  if (m >= 0) {
    char buf[8192];
    ssize_t r;
    while ((r = read(m, buf, sizeof buf)) > 0)
      if (write(fd, buf, (size_t)r) < 0) break;
    close(m);
  }
  if (fd != 2) close(fd);
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void install(void) {
  void *warm[1];
  backtrace(warm, 1); /* loads libgcc_s now: dlopen inside a signal handler can deadlock */
  static char alt[1 << 16];
  stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
  sigaltstack(&ss, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, 0);
}
