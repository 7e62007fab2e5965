/* Compiled with -fsyntax-only by the abi.layout_pins_* tests: with the natural layout it must compile, with
 * -fpack-struct=4 layout.h's pins must stop it. */
#include <firelink/layout.h>

int fl_layout_pins_probe(void);
int fl_layout_pins_probe(void) { return (int)sizeof(fl_device); }
