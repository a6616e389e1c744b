/*
 * syslog(3) into a file, for servers that log only to syslog (Cyrus): a test machine has no /dev/log.
 * Loaded with LD_PRELOAD; the file is $SYSLOG_FILE (it must exist and be writable by the server's user).
 * Built by test/support/cyrus.ts when a C compiler is present; without one the server logs nowhere.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

static FILE *out;

void openlog(const char *ident, int option, int facility) { (void)ident; (void)option; (void)facility; }
void closelog(void) {}

void vsyslog(int priority, const char *format, va_list args) {
  if (!out) {
    const char *file = getenv("SYSLOG_FILE");
    out = fopen(file ? file : "/dev/null", "a");
    if (!out) return;
    setvbuf(out, NULL, _IOLBF, 0);
  }
  fprintf(out, "<%d> ", priority);
  vfprintf(out, format, args);
  fputc('\n', out);
}

void syslog(int priority, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsyslog(priority, format, args);
  va_end(args);
}

/* What glibc's headers turn syslog() into with _FORTIFY_SOURCE. */
void __syslog_chk(int priority, int flag, const char *format, ...) {
  va_list args;
  (void)flag;
  va_start(args, format);
  vsyslog(priority, format, args);
  va_end(args);
}

void __vsyslog_chk(int priority, int flag, const char *format, va_list args) {
  (void)flag;
  vsyslog(priority, format, args);
}
