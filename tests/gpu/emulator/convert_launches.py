#!/usr/bin/env python3
"""Rewrites a CUDA source for the host emulation (emulated_device.h): every `kernel<<<config>>>(args);`
becomes `emulated::Launch(EMULATED_CONFIG(config), [&] { kernel(args); })`, each `__shared__ T name[N];` a
reference to the emulated block's own copy (NaN at the block's start), the dynamic shared array a pointer
into the block's dynamic shared memory.

usage: convert_launches.py INPUT.cu OUTPUT.cpp"""
import re
import sys


def matching_paren(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == '(':
            depth += 1
        elif text[i] == ')':
            depth -= 1
            if depth == 0:
                return i
    raise SystemExit('convert_launches.py: unbalanced parentheses after position %d' % open_at)


def kernel_name_start(text, launch_at):
    """Start of the kernel's name before `<<<`, template arguments (`Kernel<5>`) included."""
    i = launch_at
    depth = 0
    while i > 0:
        c = text[i - 1]
        if c == '>':
            depth += 1
        elif c == '<':
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c == '_'):
            break
        i -= 1
    return i


def convert(src):
    src = src.replace('#include <cuda_runtime.h>', '#include "emulated_device.h"')
    src, dynamic = re.subn(r'extern __shared__ float (\w+)\[\];', r'float* \1 = emulated::DynamicShared();', src)
    src, static = re.subn(
        r'__shared__ (\w+) (\w+)\[([^\]]+)\];',
        r'\1 (&\2)[\3] = *reinterpret_cast<\1 (*)[\3]>(emulated::StaticShared(sizeof(\1) * (\3), __LINE__));', src)
    out, at, launches = [], 0, 0
    while True:
        launch = src.find('<<<', at)
        if launch < 0:
            out.append(src[at:])
            break
        name_at = kernel_name_start(src, launch)
        config_end = src.find('>>>', launch)
        args_open = src.find('(', config_end)
        args_close = matching_paren(src, args_open)
        out.append(src[at:name_at])
        out.append('emulated::Launch(EMULATED_CONFIG(%s), [&] { %s(%s); })' % (
            src[launch + 3:config_end], src[name_at:launch], src[args_open + 1:args_close]))
        at = args_close + 1
        launches += 1
    if launches == 0:
        raise SystemExit('convert_launches.py: no kernel launch found')
    return ''.join(out), launches, dynamic, static


if __name__ == '__main__':
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    text, launches, dynamic, static = convert(open(sys.argv[1]).read())
    open(sys.argv[2], 'w').write(text)
    print('convert_launches.py: %d launches, %d dynamic and %d static shared arrays' % (launches, dynamic, static))
