/* Including this header makes every following DEFINE_GUID allocate storage. */
#ifndef INITGUID
#define INITGUID
#endif
#include "guiddef.h"
