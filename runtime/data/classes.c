/* Class names of the data sets (classes.h). */
#include "classes.h"

#include <stdio.h>

const char *data_class_name(const DataSpec *d, int k, char *buf, size_t len)
{
    if (d->class_names && k >= 0 && k < d->classes && d->class_names[k])
        return d->class_names[k];
    snprintf(buf, len, "%d", k);
    return buf;
}
