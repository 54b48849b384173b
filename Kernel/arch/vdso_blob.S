// The vDSO image (Kernel/vdso, linked by Kernel/build.sh), carried in the kernel and mapped
// into the app by the loader. Its page 1 (vvar, the clock data the kernel writes at load) is
// all zeros in the file and is not carried: the blob is page 0 (headers and dynamic tables),
// then the code from page 2 on. The loader copies it into fresh pages, so no alignment is
// needed here.
.section .rodata
.p2align 4
.global vdso_image_start
.global vdso_image_end
vdso_image_start:
    .incbin VDSO_PATH, 0, 4096
    .incbin VDSO_PATH, 8192
vdso_image_end:
