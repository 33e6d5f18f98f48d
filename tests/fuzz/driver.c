/*
 * A small stand-in for libFuzzer, so that the fuzz targets run in every
 * build (with gcc too) as a bounded smoke test under ctest, label
 * fuzz-smoke: each file of the seed directories given on the command line
 * is run as is, then mutated a fixed number of times with a fixed seed
 * (bit flips, byte changes, truncation, duplication), so every run is the
 * same and ends by itself. With clang, -DRELAY_FUZZ=ON builds the same
 * targets against real libFuzzer instead.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64 * 1024)

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t next(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)rng;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
        int steps = 1 + (int)(next() % 4);
        for (int s = 0; s < steps; s++) {
                size_t pos = len ? next() % len : 0;
                switch (next() % 6) {
                case 0: /* flip a bit */
                        if (len)
                                buf[pos] ^= (uint8_t)(1u << (next() % 8));
                        break;
                case 1: /* set an interesting byte */
                        if (len) {
                                static const uint8_t v[] = {0,    1,    0x7f,
                                                            0x80, 0xfe, 0xff};
                                buf[pos] = v[next() % sizeof(v)];
                        }
                        break;
                case 2: /* truncate */
                        len = pos;
                        break;
                case 3: /* insert a random byte */
                        if (len < cap) {
                                memmove(buf + pos + 1, buf + pos, len - pos);
                                buf[pos] = (uint8_t)next();
                                len++;
                        }
                        break;
                case 4: /* delete a byte */
                        if (len) {
                                memmove(buf + pos, buf + pos + 1,
                                        len - pos - 1);
                                len--;
                        }
                        break;
                default: /* duplicate a chunk */
                        if (len && len * 2 <= cap) {
                                size_t n = 1 + next() % (len - pos);
                                memmove(buf + pos + n, buf + pos, len - pos);
                                len += n;
                        }
                }
        }
        return len;
}

int main(int argc, char **argv)
{
        long rounds = 20000;
        const char *env = getenv("RELAY_FUZZ_ROUNDS");
        if (env)
                rounds = atol(env);
        static uint8_t seed[FUZZ_MAX_INPUT], buf[FUZZ_MAX_INPUT];
        size_t runs = 0, files = 0;
        for (int i = 1; i < argc; i++) {
                DIR *d = opendir(argv[i]);
                if (!d) {
                        perror(argv[i]);
                        return 2;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/%s", argv[i],
                                 de->d_name);
                        FILE *fp = fopen(path, "rb");
                        if (!fp)
                                continue;
                        size_t len = fread(seed, 1, sizeof(seed) / 2, fp);
                        fclose(fp);
                        files++;
                        LLVMFuzzerTestOneInput(seed, len);
                        runs++;
                        for (long r = 0; r < rounds; r++) {
                                memcpy(buf, seed, len);
                                size_t n = mutate(buf, len, sizeof(buf));
                                LLVMFuzzerTestOneInput(buf, n);
                                runs++;
                        }
                }
                closedir(d);
        }
        if (!files) {
                fprintf(stderr, "no seed files\n");
                return 2;
        }
        printf("%zu seed file(s), %zu input(s), no crash\n", files, runs);
        return 0;
}
