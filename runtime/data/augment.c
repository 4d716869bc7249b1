/* Flips and crops (augment.h), applied while a batch is converted: nothing is stored, and the draw of each item
 * depends only on (seed, epoch, item). */
#include "augment.h"

#define AUGMENT_STREAM 0x4155474d454e54ull /* "AUGMENT": keeps these draws apart from the other streams */

/* splitmix64's finaliser: a bijective mix whose outputs pass BigCrush for consecutive inputs. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void augment_draw(const Augment *a, int item, int *flip, int *dx, int *dy)
{
    uint64_t h = mix64(a->seed ^ AUGMENT_STREAM ^ mix64((uint64_t)(uint32_t)a->epoch << 32 | (uint32_t)item));
    uint64_t span = 2 * (uint64_t)a->crop + 1;
    *flip = a->flip && (h & 1);
    *dx = (int)((h >> 8) % span);
    *dy = (int)((h >> 32) % span);
}

/* Normalised value of a stored value (or of the padding's 0) in channel c. */
static float value(const Normalizer *nz, DataType dt, int c, const void *src, long at)
{
    if (dt == DT_U8) {
        const float *lut = nz->nch == 1 ? nz->lut : nz->luts + (size_t)c * 256;
        return lut[at < 0 ? 0 : ((const uint8_t *)src)[at]];
    }
    float m = nz->nch == 1 ? nz->fmean : nz->fmeans[c], sd = nz->nch == 1 ? nz->fstd : nz->fstds[c];
    return ((at < 0 ? 0.0f : ((const float *)src)[at]) - m) / sd;
}

void augment_item(const Augment *a, int item, Shape s, const Normalizer *nz, DataType dt, const void *src,
                  float *dst)
{
    int flip, dx, dy;
    augment_draw(a, item, &flip, &dx, &dy);
    for (int c = 0; c < s.c; c++)
        for (int y = 0; y < s.h; y++) {
            int sy = y + dy - a->crop;
            for (int x = 0; x < s.w; x++) {
                int sx = (flip ? s.w - 1 - x : x) + dx - a->crop;
                long at = sy < 0 || sy >= s.h || sx < 0 || sx >= s.w ? -1 : ((long)c * s.h + sy) * s.w + sx;
                /* a channel of its own only when the normaliser has one per channel */
                dst[((size_t)c * s.h + y) * s.w + x] = value(nz, dt, nz->nch == 1 ? 0 : c, src, at);
            }
        }
}
