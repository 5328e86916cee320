/* The student-t-process method: its registration (methods/methods.def, include/nnlab/ledger.h nl_method). */
#include "student_t_process/student_t_process.h"

static const nl_method_alias g_aliases[] = {{"stp", nl_student_t_process_cli}, {NULL, NULL}};
static const nl_experiment *const g_experiments[] = {&nl_exp_student_t_process, NULL};

const nl_method nl_method_student_t_process = {
    .id = "student-t-process",
    .summary = "Student-t process vs GP regression over NNGP kernels on syn-t (methods/student_t_process)",
    .cli = nl_student_t_process_cli,
    .aliases = g_aliases,
    .experiments = g_experiments,
};
