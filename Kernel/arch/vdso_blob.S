// The vDSO image (Kernel/vdso, linked by Kernel/build.sh), carried in the kernel and mapped
// into the app by the loader.
.section .rodata
.p2align 12
.global vdso_image_start
.global vdso_image_end
vdso_image_start:
    .incbin VDSO_PATH
vdso_image_end:
