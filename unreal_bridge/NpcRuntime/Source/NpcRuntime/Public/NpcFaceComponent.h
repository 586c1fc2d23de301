// UNpcFaceComponent: gives an actor a live NPC face. Blueprint-callable; all logic in the core.
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "NpcRuntimeTypes.h"

#include <memory>

#include "NpcFaceComponent.generated.h"

class UTexture2D;
class USoundWave;
namespace npc { class Performer; }
namespace Audio { class FAudioCapture; }

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FNpcStateChanged, ENpcPerformerState, State, const FString&, Message);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FNpcLineEvent, const FString&, LineId, const FString&, Text);

UCLASS(ClassGroup = (AI), meta = (BlueprintSpawnableComponent), DisplayName = "NPC Face")
class NPCRUNTIME_API UNpcFaceComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UNpcFaceComponent();

	/** The NPC's id as registered with the sidecar (`npc-runtime npc add`). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime")
	FString NpcId;

	/** Start streaming on BeginPlay (otherwise call StartPerformance). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "NPC Runtime")
	bool bAutoStart = true;

	/** The face texture (PF_DXT1 by default), updated every frame; bind it to a material parameter. */
	UPROPERTY(BlueprintReadOnly, Transient, Category = "NPC Runtime")
	TObjectPtr<UTexture2D> FaceTexture;

	/** Fires on the game thread when the stream connects, reconnects, stops or fails. */
	UPROPERTY(BlueprintAssignable, Category = "NPC Runtime")
	FNpcStateChanged OnConnectionStateChanged;

	UPROPERTY(BlueprintAssignable, Category = "NPC Runtime")
	FNpcLineEvent OnLineStarted;

	UPROPERTY(BlueprintAssignable, Category = "NPC Runtime")
	FNpcLineEvent OnLineFinished;

	/** Opens the NPC's stream (non-blocking; watch OnConnectionStateChanged). */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	ENpcResult StartPerformance();

	/** Ends the stream after the audio already sent has been rendered. */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	void StopPerformance(bool bImmediate = false);

	/**
	 * The NPC says a line: the sound's PCM goes to the sidecar now, the sound itself plays after the
	 * stream latency so lips and voice match, and the emotion applies from the line's start.
	 */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	ENpcResult PlayDialogueLine(USoundWave* Sound, const FString& EmotionTag = TEXT(""), float Intensity = 1.f,
	                            const FString& Subtitle = TEXT(""));

	/** Changes the emotion now: a vocabulary tag or preset at 0..1, blended over BlendSeconds. */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	ENpcResult SetEmotion(const FString& EmotionTag, float Intensity = 1.f, float BlendSeconds = 0.3f);

	/** What the NPC hears (the player's voice), mono float samples from any source. Thread-safe. */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	ENpcResult PushPlayerVoice(const TArray<float>& Samples, int32 SampleRate);

	/** Feeds the default audio capture device (the player's microphone) as what the NPC hears. */
	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	bool StartPlayerVoiceCapture();

	UFUNCTION(BlueprintCallable, Category = "NPC Runtime")
	void StopPlayerVoiceCapture();

	UFUNCTION(BlueprintPure, Category = "NPC Runtime")
	ENpcPerformerState GetState() const { return State; }

	/** Delay the NPC's own audio playback by this much (seconds) to match its face. */
	UFUNCTION(BlueprintPure, Category = "NPC Runtime")
	float GetLatencySeconds() const { return LatencyUs / 1e6f; }

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type Reason) override;
	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

private:
	void HandleEvents();
	void EnsureTexture(int32 Width, int32 Height, int32 Format);
	void UploadDueFrame();

	std::shared_ptr<npc::Performer> Performer;
	TUniquePtr<Audio::FAudioCapture> Capture;
	ENpcPerformerState State = ENpcPerformerState::Connecting;
	int64 LatencyUs = 0;
	uint32 PayloadBytes = 0;
	FTimerHandle PlaybackTimer;
};
