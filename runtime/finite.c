/* The divergence check: finds the first NaN or Inf among the network's parameters and buffers
 * and names it, so a diverged run says where it broke instead of printing "nan". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "net.h"

int net_check_finite(Net *net, char *err, size_t errlen)
{
    NetParam *ps = NULL;
    int n = net_params(net, &ps);
    if (n < 0) {
        snprintf(err, errlen, "out of memory listing the parameters");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const Param *p = &ps[i].p;
        for (size_t j = 0; j < p->size; j++)
            if (!isfinite(p->value[j])) {
                snprintf(err, errlen, "non-finite value in %s/%s[%zu]", ps[i].layer->name, p->name, j);
                free(ps);
                return -1;
            }
    }
    free(ps);
    return 0;
}
