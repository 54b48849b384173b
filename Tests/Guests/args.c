/* args: argc, every argv[i] and every envp entry, printed verbatim between brackets with
 * their byte lengths — checks that argv (incl. argv[0] as typed, empty strings, spaces,
 * UTF-8, long and many arguments) and the environment (exactly the --env variables, in
 * order, values containing '=') round-trip into the guest's initial stack. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv, char **envp) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d] (%zu) = [%s]\n", i, strlen(argv[i]), argv[i]);
    printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");
    int n = 0;
    for (char **e = envp; *e; e++, n++)
        printf("envp[%d] (%zu) = [%s]\n", n, strlen(*e), *e);
    printf("envc=%d\n", n);
    printf("envp follows argv: %s\n", envp == argv + argc + 1 ? "yes" : "no");
    return 0;
}
