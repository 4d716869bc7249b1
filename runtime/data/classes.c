/* Class names of the data sets (classes.h). */
#include "classes.h"

#include <stdio.h>
#include <string.h>

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

const char *data_class_name(const char *kind, int k, char *buf, size_t len)
{
    if (strcmp(kind, "fashion_mnist") == 0 && k >= 0 && k < 10)
        return fashion_names[k];
    snprintf(buf, len, "%d", k);
    return buf;
}
