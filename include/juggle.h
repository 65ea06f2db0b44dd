/* SPDX-License-Identifier: MIT */
/*
 * juggle.h - one include for the whole runtime: green threads and their
 * hub, the callback loop, cooperative I/O, green synchronization, futures
 * and executors (thread, offload and process pools), shared memory,
 * subprocesses, the patch switch and the blocking monitor.
 */
#ifndef JUGGLE_H
#define JUGGLE_H

#include "juggle/common.h"
#include "juggle/loop.h"
#include "juggle/green.h"
#include "juggle/io.h"
#include "juggle/future.h"
#include "juggle/executor.h"
#include "juggle/sync.h"
#include "juggle/queue.h"
#include "juggle/group.h"
#include "juggle/shm.h"
#include "juggle/subprocess.h"
#include "juggle/process.h"
#include "juggle/patch.h"
#include "juggle/monitor.h"

#endif
