#pragma once
// The C interface of the simulator (c/include/edmm/edmm_sim.h) as Swift sees it: its structs
// are the layout truth for the EDMMSimC exports.
#include "../../../c/include/edmm/edmm_sim.h"
