// Project Settings > Plugins > NPC Runtime. Saved to DefaultGame.ini.
#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "NpcRuntimeTypes.h"
#include "NpcRuntimeSettings.generated.h"

UCLASS(Config = Game, DefaultConfig, meta = (DisplayName = "NPC Runtime"))
class NPCRUNTIME_API UNpcRuntimeSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	/** gRPC target of the sidecar. The default is the local sidecar (`npc-runtime serve`), which listens on loopback only. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** Use TLS. Only for a remote sidecar; a local one speaks plaintext on loopback. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection")
	bool bUseTls = false;

	/** PEM file with root certificates for TLS; empty uses the system roots. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection", meta = (EditCondition = "bUseTls"))
	FFilePath TlsRootCertsPem;

	/** Shown in the sidecar's logs for streams from this game. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection")
	FString ClientName = TEXT("unreal");

	/** First reconnect delay (ms) after the sidecar goes away; it doubles up to the cap. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection", meta = (ClampMin = "10", ClampMax = "10000"))
	int32 ReconnectMinMs = 100;

	/** Reconnect delay cap (ms): frames resume within about this plus the stream latency once the sidecar is back. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection", meta = (ClampMin = "10", ClampMax = "60000"))
	int32 ReconnectMaxMs = 500;

	/** Texture format of the face: BC1 (PF_DXT1) is uploaded without decoding at 1/8 of RGBA8's bandwidth. */
	UPROPERTY(Config, EditAnywhere, Category = "Frames")
	ENpcTextureFormat TextureFormat = ENpcTextureFormat::BC1;

	/** Frames held per NPC before the oldest is dropped (bounded memory through a hitch). */
	UPROPERTY(Config, EditAnywhere, Category = "Frames", meta = (ClampMin = "1", ClampMax = "1024"))
	int32 FrameQueueCapacity = 32;

	/** Audio accepted ahead of now per channel (ms); longer dialogue lines must be pushed in parts. */
	UPROPERTY(Config, EditAnywhere, Category = "Audio", meta = (ClampMin = "1000", ClampMax = "600000"))
	int32 MaxAudioAheadMs = 30000;

	/** Extra time (s) between pushing a line and its first sample, so the clip reaches the sidecar before its frames are due. */
	UPROPERTY(Config, EditAnywhere, Category = "Audio", meta = (ClampMin = "0.0", ClampMax = "2.0"))
	float ScheduleMarginSeconds = 0.1f;

	virtual FName GetCategoryName() const override { return TEXT("Plugins"); }
};
