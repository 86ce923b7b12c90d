/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Go 1.22 and later get their randomness from ProcessPrng in
 * bcryptprimitives.dll; a Windows binary built by Go dies at start-up when the
 * export is missing. This DLL provides it by forwarding to RtlGenRandom
 * (advapi32!SystemFunction036), which Wine implements. It is a test harness
 * for running Windows builds under Wine, never shipped with the product.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Entry point: built with -nostdlib, so there is no C runtime to set up. */
BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
	(void)instance;
	(void)reason;
	(void)reserved;
	return TRUE;
}

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
	/* RtlGenRandom takes a ULONG length; SIZE_T is wider on 64-bit. */
	while (size > 0) {
		ULONG n = size > 0x40000000 ? 0x40000000 : (ULONG)size;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		size -= n;
	}
	return TRUE;
}
