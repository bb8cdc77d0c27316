// Implementation files: sgx.c, socket.c, shm.c
#include "CEDMMShims.h"
