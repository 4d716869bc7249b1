/* Data augmentation for image items (`augment(flip, crop)`): a random horizontal flip and a random crop of the
 * image after `crop` pixels of zero padding on every side. Each item's draw is a hash of the run's seed, the epoch
 * and the item -- no generator state -- so the same run, a resumed run and any thread count see the same images. */
#ifndef BNNI_DATA_AUGMENT_H
#define BNNI_DATA_AUGMENT_H

#include "dataset.h"

/* Whether item `item` is flipped in a's epoch, and where its crop window starts in the padded image (dx, dy in
 * [0, 2*crop]; crop, crop is the image itself). */
void augment_draw(const Augment *a, int item, int *flip, int *dx, int *dy);

/* One C x H x W item (src: bytes or floats, as dt says) cropped, then flipped, then normalised into dst: output
 * pixel (c, y, x) is input pixel (c, y + dy - crop, x' + dx - crop) with x' = W-1-x when flipped, else x; one
 * outside the image is a 0 before normalisation. */
void augment_item(const Augment *a, int item, Shape s, const Normalizer *nz, DataType dt, const void *src,
                  float *dst);

#endif
