/* spin: never makes progress and never exits. `apus run --timeout` must stop it with
 * status 251 and a message; without a limit a hung guest must never look like success. */
int main(void) {
    for (volatile unsigned long i = 0;; i++) {
    }
}
