/* nnlab — command-line entry point: subcommand dispatch and help texts. */
#include "cli.h"
#include "nnlab/base.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NL_VERSION_STRING
#define NL_VERSION_STRING "0.1.0"
#endif

void help_main(FILE *f) {
    fprintf(f,
            "nnlab %s — a deep-learning research library and its command-line tool\n"
            "\n"
            "usage: nnlab <command> [options]\n"
            "\n"
            "commands:\n"
            "  train mlp|cnn   train a classifier on MNIST / Fashion-MNIST, report test accuracy, save a checkpoint\n"
            "  eval            evaluate a saved checkpoint on a dataset\n"
            "  list            list every registered experiment of the claims ledger (method, paper, claim, status)\n"
            "  repro           run ledger experiments (quick or full), write DIR/ledger.json and DIR/report.html\n"
            "  help [COMMAND]  this text, or the help of a command (same as nnlab COMMAND --help)\n",
            NL_VERSION_STRING);
    if (cli_method_commands[0].name) {
        fprintf(f, "\nmethod commands:\n");
        for (const cli_command *c = cli_method_commands; c->name; c++) fprintf(f, "  %-14s  %s\n", c->name, c->summary);
    }
    fprintf(f,
            "\n"
            "Every command accepts --help. Threads: --threads T, else the NL_NUM_THREADS environment variable, else\n"
            "all cores. Exit status: 0 success, 1 failure (error, NaN, missing dataset, failed experiment), 2 bad\n"
            "command line. Documentation: docs/cli.md, docs/repro.md, docs/library.md.\n");
}

void help_train(FILE *f) {
    fprintf(f,
            "usage: nnlab train mlp|cnn [options]\n"
            "\n"
            "Train a classifier, evaluate it on the test split and optionally save it (safetensors, architecture in\n"
            "the metadata). Progress goes to stderr (a redrawn bar on a terminal, plain lines otherwise).\n"
            "\n"
            "data:\n"
            "  --data NAME          fashion-mnist (default) or mnist\n"
            "  --data-dir DIR       directory with the four IDX files (default: the standard search, docs/data.md)\n"
            "  --limit N            train on the first N training examples only (default: all)\n"
            "  --valid N            hold out N training examples (seeded) for validation (default 0: the test set\n"
            "                       is evaluated after every epoch, for reporting only)\n"
            "model:\n"
            "  --hidden LIST        MLP hidden widths, comma-separated (default 256,256)\n"
            "  --act NAME           relu (default), tanh, gelu, sigmoid\n"
            "  --dropout P          dropout probability in [0, 1) (default 0)\n"
            "  --channels LIST      CNN channels per conv block (default 16,32)\n"
            "  --fc N               CNN hidden fully connected width, 0 = none (default 0)\n"
            "training:\n"
            "  --epochs N           epochs (default 5)\n"
            "  --steps N            train for exactly N steps instead of whole epochs\n"
            "  --batch B            mini-batch size (default 128)\n"
            "  --optim NAME         sgd, adam (default) or adamw\n"
            "  --lr X               learning rate (default 1e-3 for adam/adamw, 0.01 for sgd)\n"
            "  --momentum X         SGD momentum in [0, 1) (default 0.9 with sgd)\n"
            "  --wd X               weight decay (default 0; 0.01 for adamw)\n"
            "  --sched NAME         constant (default), cosine or linear decay to 0 over the run\n"
            "  --warmup N           linear warmup steps (default 0)\n"
            "  --clip X             clip the global gradient norm to X (default: off)\n"
            "  --patience N         early stopping after N epochs without a better validation accuracy (needs --valid)\n"
            "  --seed S             seed of init, shuffling and dropout (default 0)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n"
            "output:\n"
            "  --save FILE          write the trained model (a checkpoint is also written after every epoch)\n"
            "  --json               print one final JSON line on stdout (test_accuracy, epoch_seconds, samples_per_sec, ...)\n"
            "  --quiet              no progress output\n"
            "\n"
            "example: nnlab train mlp --epochs 3 --lr 2e-3 --sched cosine --save mlp.safetensors\n");
}

void help_eval(FILE *f) {
    fprintf(f,
            "usage: nnlab eval --load FILE [options]\n"
            "\n"
            "Evaluate a checkpoint written by `nnlab train --save` (or nl_model_save) on a dataset split.\n"
            "\n"
            "  --load FILE          the checkpoint (required)\n"
            "  --data NAME          fashion-mnist (default) or mnist\n"
            "  --data-dir DIR       directory with the IDX files (default: the standard search)\n"
            "  --split NAME         test (default) or train\n"
            "  --limit N            evaluate the first N examples only\n"
            "  --json               print one JSON line (accuracy, loss, examples, seconds)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n");
}

void help_list(FILE *f) {
    fprintf(f,
            "usage: nnlab list [--json]\n"
            "\n"
            "List every registered experiment of the claims ledger: method, status, paper and claim.\n"
            "\n"
            "  --json               one JSON document with the same fields and the quick/full configurations\n");
}

void help_repro(FILE *f) {
    fprintf(f,
            "usage: nnlab repro [METHOD...] [--quick|--full] [--out DIR] [--threads T]\n"
            "\n"
            "Run the selected experiments (default: all registered, see `nnlab list`), judge each against its claim,\n"
            "print the table (method, claim, measured, verdict, seconds) and write DIR/ledger.json and a\n"
            "self-contained DIR/report.html (table + SVG plots). The files are rewritten after every experiment.\n"
            "Exit status 1 if any experiment fails or errors (the others still run).\n"
            "\n"
            "  --quick              quick configurations (default): minutes on 2 cores\n"
            "  --full               full configurations (the paper-scale numbers)\n"
            "  --out DIR            output directory (default: out)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n"
            "  --quiet              no per-experiment progress on stderr\n");
}

/* OpenMP's default spin-waiting fights with OpenBLAS's own threads on small machines (several times slower
 * training on 2 cores). The wait policy is read when libgomp loads, so set it and re-execute once. */
static void fix_omp_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("NL_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("NL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv) {
    fix_omp_wait_policy(argv);
    if (argc < 2) {
        help_main(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        help_main(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("nnlab %s\n", NL_VERSION_STRING);
        return CLI_OK;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) help_main(stdout);
        else if (!strcmp(argv[2], "train")) help_train(stdout);
        else if (!strcmp(argv[2], "eval")) help_eval(stdout);
        else if (!strcmp(argv[2], "list")) help_list(stdout);
        else if (!strcmp(argv[2], "repro")) help_repro(stdout);
        else {
            for (const cli_command *c = cli_method_commands; c->name; c++)
                if (!strcmp(argv[2], c->name)) {
                    char *h[2] = {"--help", NULL};
                    return c->fn(1, h);
                }
            return cli_usage_error(NULL, "no command '%s' (see nnlab --help)", argv[2]);
        }
        return CLI_OK;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "list")) return cmd_list(argc - 2, argv + 2);
    if (!strcmp(cmd, "repro")) return cmd_repro(argc - 2, argv + 2);
    for (const cli_command *c = cli_method_commands; c->name; c++)
        if (!strcmp(cmd, c->name)) return c->fn(argc - 2, argv + 2);
    return cli_usage_error(NULL, "unknown command '%s' (see nnlab --help)", cmd);
}
