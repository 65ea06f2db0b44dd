# SPDX-License-Identifier: MIT
# Toolchain file: cross-compile juggle for aarch64 Linux with Debian's
# gcc-aarch64-linux-gnu. Tests run under qemu-aarch64 when it is installed
# (qemu-user), with the cross sysroot as its library path.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(JG_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "cross tool prefix")
set(CMAKE_C_COMPILER ${JG_CROSS_PREFIX}gcc)
set(CMAKE_ASM_COMPILER ${JG_CROSS_PREFIX}gcc)

set(JG_CROSS_SYSROOT /usr/aarch64-linux-gnu CACHE PATH
    "where the aarch64 libc lives (qemu's -L)")
set(CMAKE_FIND_ROOT_PATH ${JG_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(JG_QEMU_AARCH64 qemu-aarch64)
if(JG_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR
        ${JG_QEMU_AARCH64} -L ${JG_CROSS_SYSROOT})
endif()
