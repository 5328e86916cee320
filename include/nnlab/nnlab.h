/* nnlab/nnlab.h — the engine, all of it (libraries: lib/<name>/<name>.h; methods: methods/<folder>/<folder>.h). */
#ifndef NNLAB_H
#define NNLAB_H
#include "nnlab/base.h"
#include "nnlab/tensor.h"
#include "nnlab/autograd.h"
#include "nnlab/ops.h"
#include "nnlab/nn.h"
#include "nnlab/linalg.h"
#include "nnlab/rng.h"
#include "nnlab/optim.h"
#include "nnlab/gradcheck.h"
#include "nnlab/sparse.h"
#include "nnlab/data.h"
#include "nnlab/safetensors.h"
#include "nnlab/model.h"
#include "nnlab/param.h"
#include "nnlab/train.h"
#include "nnlab/ledger.h"
#endif
