// The structs of edmm_sim.h, for EDMMSimC; nothing to compile (SwiftPM needs a source file).
#include "CEDMMSimABI.h"
