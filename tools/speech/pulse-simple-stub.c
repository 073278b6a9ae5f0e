/* A stand-in for libpulse-simple.so.0, which festival's speech tools library
 * (libestbase) links for audio output: the corpus script only ever has
 * festival write waves to stdout, so no audio device is opened, and this
 * spares unpacking PulseAudio and its dependencies. Every entry point reports
 * failure. Built with a version script giving the symbols libestbase asks for
 * (PULSE_0), so the loader binds them without a warning. */
#include <stddef.h>
typedef struct pa_simple pa_simple;
pa_simple *pa_simple_new(const char *server, const char *name, int dir, const char *dev, const char *stream,
                         const void *spec, const void *map, const void *attr, int *error) {
  (void)server; (void)name; (void)dir; (void)dev; (void)stream; (void)spec; (void)map; (void)attr;
  if (error) *error = 1;
  return NULL;
}
int pa_simple_write(pa_simple *s, const void *data, size_t bytes, int *error) { (void)s; (void)data; (void)bytes; if (error) *error = 1; return -1; }
int pa_simple_drain(pa_simple *s, int *error) { (void)s; if (error) *error = 1; return -1; }
void pa_simple_free(pa_simple *s) { (void)s; }
