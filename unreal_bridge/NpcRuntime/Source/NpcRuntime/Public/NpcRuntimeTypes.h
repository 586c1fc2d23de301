// Blueprint-visible mirrors of the bridge core's enums (npc_bridge.h).
#pragma once

#include "CoreMinimal.h"
#include "NpcRuntimeTypes.generated.h"

/** Result of a bridge call: the gRPC status codes (1..16) plus the bridge's own (100+). */
UENUM(BlueprintType)
enum class ENpcResult : uint8
{
	Ok = 0,
	Cancelled = 1,
	Unknown = 2,
	InvalidArgument = 3,
	DeadlineExceeded = 4,
	NotFound = 5,
	AlreadyExists = 6,
	PermissionDenied = 7,
	ResourceExhausted = 8,
	FailedPrecondition = 9,
	Aborted = 10,
	OutOfRange = 11,
	Unimplemented = 12,
	Internal = 13,
	Unavailable = 14,
	DataLoss = 15,
	Unauthenticated = 16,
	NullArgument = 100,
	BadHandle = 101,
	Closed = 102,
	BufferTooSmall = 103,
	BufferFull = 104,
	NotStreaming = 105,
	NoFrame = 106,
	NoEvent = 107,
};

/** Lifecycle of one NPC's stream (npc_performer_state). */
UENUM(BlueprintType)
enum class ENpcPerformerState : uint8
{
	Connecting = 0,
	Streaming = 1,
	Reconnecting = 2,
	Stopped = 3,
	Failed = 4,
};

UENUM(BlueprintType)
enum class ENpcTextureFormat : uint8
{
	/** 4 bits per pixel, uploaded as-is (PF_DXT1). */
	BC1 = 1,
	/** 32 bits per pixel (PF_R8G8B8A8): debugging, or platforms without BC1. */
	RGBA8 = 2,
};
