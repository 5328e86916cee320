/* Commands of the shared libraries (lib/): the methods' commands come from the registry (methods/methods.def). */
#include "app.h"
#include <stddef.h>

#include "diffusion/diffusion.h"
#include "graph/graph.h"
#include "transformer/transformer.h"

const app_command app_library_commands[] = {
    {"lm", nl_lm_cli, "transformer language model (RoPE variants, norms, attention kinds): train, eval, generate "
                      "(lib/transformer)"},
    {"graph", nl_graph_cli, "graph node classification (GCN, GraphSAGE, GAT, MLP) on karate / WordNet nouns (lib/graph)"},
    {"diffusion", nl_diffusion_cli, "DDPM on small images: a UNet, DDIM/DDPM sampling, PNG grids (lib/diffusion)"},
    {NULL, NULL, NULL}};
