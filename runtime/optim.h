/* Optimizers with PyTorch's exact update rules (torch.optim.SGD and torch.optim.Adam), and the
 * per-epoch learning-rate schedules. The optimizer walks the network's one parameter list. */
#ifndef BNNI_OPTIM_H
#define BNNI_OPTIM_H

#include "net.h"

typedef struct Optim Optim;

/* params: the network's list from net_params (borrowed, must outlive the optimizer); buffers are skipped.
 * Returns 0 and *out (free with optim_free), or -1 with err. */
int optim_create(const OptSpec *spec, NetParam *params, int n, Optim **out, char *err, size_t errlen);
/* One update of every trainable parameter from its gradient, at learning rate lr. Returns 1 when every updated value
 * is finite, else 0: each thread checks the values it has just written, while they are still in its cache. */
int optim_step(Optim *o, double lr);
long long optim_step_count(const Optim *o);
void optim_set_step_count(Optim *o, long long steps);
/* The state tensors of params[i] ("momentum_buffer" for sgd with momentum; "exp_avg", "exp_avg_sq" for adam),
 * as Params whose value points into the optimizer (so a checkpoint can read or fill them). Returns their count. */
int optim_state(Optim *o, int i, Param *out);
void optim_free(Optim *o);

/* The learning rate of epoch `epoch` (0-based) of `epochs`: constant; step multiplies by factor every `every`
 * epochs; cosine anneals from base_lr to min_lr as torch's CosineAnnealingLR with T_max = epochs. */
double sched_lr(const SchedSpec *s, double base_lr, int epoch, int epochs);

#endif
