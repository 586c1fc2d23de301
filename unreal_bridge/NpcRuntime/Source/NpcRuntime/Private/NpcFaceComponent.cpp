// UNpcFaceComponent: moves Unreal data in and out of the bridge core on the game thread.
//
// Frames: each tick pops the frame due at the playback clock (core: NPC_CLOCK_AUTO) into a heap
// buffer and hands it to UpdateTextureRegions; the render thread uploads it and the cleanup
// callback frees the buffer, so no game-thread memory is referenced after the call returns.
// Audio: a dialogue line is pushed whole (the core resamples and paces it); the sound itself is
// played `latency` later so the face and the voice line up. Microphone audio is pushed straight
// from the capture thread: the core is thread-safe and never blocks on the network.
#include "NpcFaceComponent.h"

#include "AudioCaptureCore.h"
#include "Components/AudioComponent.h"
#include "Engine/Texture2D.h"
#include "Engine/World.h"
#include "Kismet/GameplayStatics.h"
#include "NpcRuntimeModule.h"
#include "NpcRuntimeSettings.h"
#include "Interfaces/IAudioFormat.h"
#include "Sound/SoundWave.h"
#include "TimerManager.h"
#include "npc_bridge.hpp"

DEFINE_LOG_CATEGORY_STATIC(LogNpcFace, Log, All);

namespace
{
ENpcResult ToResult(const npc::Status& St) { return static_cast<ENpcResult>(St.code); }

// Mono float PCM of a sound wave. Editor builds read the imported PCM; cooked builds decode the
// platform's compressed data with the audio format the wave was cooked for.
bool ExtractMonoPcm(USoundWave* Sound, TArray<float>& Out, int32& OutRate)
{
	TArray<uint8> Pcm;
	uint32 Rate = 0;
	uint16 Channels = 0;
#if WITH_EDITORONLY_DATA
	if (!Sound->GetImportedSoundWaveData(Pcm, Rate, Channels))
#endif
	{
		FSoundQualityInfo Info;
		TUniquePtr<ICompressedAudioInfo> Decoder(IAudioInfoFactoryRegistry::Get().Create(Sound->GetRuntimeFormat()));
		const uint8* Data = Sound->GetResourceData();
		if (!Decoder || !Data || !Decoder->ReadCompressedInfo(Data, Sound->GetResourceSize(), &Info))
		{
			return false;
		}
		Pcm.SetNumUninitialized(Info.SampleDataSize);
		Decoder->ExpandFile(Pcm.GetData(), &Info);
		Rate = Info.SampleRate;
		Channels = Info.NumChannels;
	}
	if (Channels == 0 || Rate == 0)
	{
		return false;
	}
	const int16* S = reinterpret_cast<const int16*>(Pcm.GetData());
	const int32 Frames = Pcm.Num() / (2 * Channels);
	Out.SetNumUninitialized(Frames);
	for (int32 I = 0; I < Frames; ++I)
	{
		float Sum = 0.f;
		for (int32 C = 0; C < Channels; ++C) Sum += S[I * Channels + C] / 32768.f;
		Out[I] = Sum / Channels;
	}
	OutRate = static_cast<int32>(Rate);
	return true;
}
}  // namespace

UNpcFaceComponent::UNpcFaceComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.TickGroup = TG_PrePhysics;
}

void UNpcFaceComponent::BeginPlay()
{
	Super::BeginPlay();
	if (bAutoStart)
	{
		StartPerformance();
	}
}

void UNpcFaceComponent::EndPlay(const EEndPlayReason::Type Reason)
{
	StopPlayerVoiceCapture();
	if (Performer)
	{
		Performer->Destroy();  // joins the bridge threads; nothing calls back afterwards
		Performer.reset();
	}
	Super::EndPlay(Reason);
}

ENpcResult UNpcFaceComponent::StartPerformance()
{
	if (Performer)
	{
		return ENpcResult::Ok;
	}
	FString Error;
	std::shared_ptr<npc::Client> Client = FNpcRuntimeModule::Get().GetClient(&Error);
	if (!Client)
	{
		OnConnectionStateChanged.Broadcast(ENpcPerformerState::Failed, Error);
		return ENpcResult::InvalidArgument;
	}
	npc::PerformerOptions O;
	O.npc_id = TCHAR_TO_UTF8(*NpcId);
	O.texture_format = static_cast<npc_texture_format>(GetDefault<UNpcRuntimeSettings>()->TextureFormat);
	O.bottom_up = false;  // Unreal textures start at the top row
	const npc::Status St = Client->CreatePerformer(O, &Performer);
	if (!St.ok())
	{
		UE_LOG(LogNpcFace, Error, TEXT("%s: %s"), *NpcId, UTF8_TO_TCHAR(St.message.c_str()));
		OnConnectionStateChanged.Broadcast(ENpcPerformerState::Failed, UTF8_TO_TCHAR(St.message.c_str()));
	}
	return ToResult(St);
}

void UNpcFaceComponent::StopPerformance(bool bImmediate)
{
	if (Performer)
	{
		Performer->Stop(bImmediate);
	}
}

ENpcResult UNpcFaceComponent::PlayDialogueLine(USoundWave* Sound, const FString& EmotionTag, float Intensity,
                                               const FString& Subtitle)
{
	if (!Performer)
	{
		return ENpcResult::NotStreaming;
	}
	if (!Sound)
	{
		return ENpcResult::NullArgument;
	}
	TArray<float> Mono;
	int32 Rate = 0;
	if (!ExtractMonoPcm(Sound, Mono, Rate))
	{
		UE_LOG(LogNpcFace, Warning, TEXT("%s: cannot read PCM from %s"), *NpcId, *Sound->GetName());
		return ENpcResult::InvalidArgument;
	}
	const float Margin = GetDefault<UNpcRuntimeSettings>()->ScheduleMarginSeconds;
	const int64 Start = Performer->TimelineUs() + static_cast<int64>(Margin * 1e6);
	const int64 End = Start + static_cast<int64>(Mono.Num()) * 1000000 / Rate;
	npc::Status St = Performer->PushAudioFloat(NPC_CHANNEL_SPEAK, Mono.GetData(), Mono.Num(), Rate, Start);
	if (!St.ok())
	{
		UE_LOG(LogNpcFace, Warning, TEXT("%s: line refused: %s"), *NpcId, UTF8_TO_TCHAR(St.message.c_str()));
		return ToResult(St);
	}
	Performer->MarkLine(TCHAR_TO_UTF8(*Sound->GetName()), Start, End, TCHAR_TO_UTF8(*Subtitle));
	if (!EmotionTag.IsEmpty())
	{
		St = Performer->SetEmotion(TCHAR_TO_UTF8(*EmotionTag), Intensity, 0.2f, Start);
		if (!St.ok())
		{
			UE_LOG(LogNpcFace, Warning, TEXT("%s: %s"), *NpcId, UTF8_TO_TCHAR(St.message.c_str()));
		}
	}
	// The face for pts p arrives `latency` after p: play the voice that much later.
	const float Delay = FMath::Max(0.01f, (Start - Performer->TimelineUs() + LatencyUs) / 1e6f);
	TWeakObjectPtr<USoundWave> Weak(Sound);
	TWeakObjectPtr<UNpcFaceComponent> Self(this);
	GetWorld()->GetTimerManager().SetTimer(PlaybackTimer, FTimerDelegate::CreateLambda([Weak, Self]()
	{
		if (Weak.IsValid() && Self.IsValid() && Self->GetOwner())
		{
			UGameplayStatics::SpawnSoundAttached(Weak.Get(), Self->GetOwner()->GetRootComponent());
		}
	}), Delay, false);
	return ENpcResult::Ok;
}

ENpcResult UNpcFaceComponent::SetEmotion(const FString& EmotionTag, float Intensity, float BlendSeconds)
{
	if (!Performer)
	{
		return ENpcResult::NotStreaming;
	}
	return ToResult(Performer->SetEmotion(TCHAR_TO_UTF8(*EmotionTag), Intensity, BlendSeconds));
}

ENpcResult UNpcFaceComponent::PushPlayerVoice(const TArray<float>& Samples, int32 SampleRate)
{
	if (!Performer)
	{
		return ENpcResult::NotStreaming;
	}
	return ToResult(Performer->PushAudioFloat(NPC_CHANNEL_LISTEN, Samples.GetData(), Samples.Num(),
	                                          static_cast<uint32>(SampleRate)));
}

bool UNpcFaceComponent::StartPlayerVoiceCapture()
{
	if (!Performer || Capture)
	{
		return Capture.IsValid();
	}
	Capture = MakeUnique<Audio::FAudioCapture>();
	Audio::FAudioCaptureDeviceParams Params;
	std::weak_ptr<npc::Performer> Weak = Performer;
	// Runs on the capture thread: downmix and push; the core copies and returns at once.
	Audio::FOnAudioCaptureFunction OnAudio = [Weak](const void* InAudio, int32 NumFrames, int32 NumChannels,
	                                                int32 SampleRate, double, bool)
	{
		std::shared_ptr<npc::Performer> P = Weak.lock();
		if (!P || NumChannels <= 0)
		{
			return;
		}
		const float* In = static_cast<const float*>(InAudio);
		TArray<float, TInlineAllocator<4096>> Mono;
		Mono.SetNumUninitialized(NumFrames);
		for (int32 I = 0; I < NumFrames; ++I)
		{
			float Sum = 0.f;
			for (int32 C = 0; C < NumChannels; ++C) Sum += In[I * NumChannels + C];
			Mono[I] = Sum / NumChannels;
		}
		P->PushAudioFloat(NPC_CHANNEL_LISTEN, Mono.GetData(), NumFrames, static_cast<uint32>(SampleRate));
	};
	if (!Capture->OpenAudioCaptureStream(Params, MoveTemp(OnAudio), 1024) || !Capture->StartStream())
	{
		Capture.Reset();
		return false;
	}
	return true;
}

void UNpcFaceComponent::StopPlayerVoiceCapture()
{
	if (Capture)
	{
		Capture->StopStream();
		Capture->CloseStream();
		Capture.Reset();
	}
}

void UNpcFaceComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!Performer)
	{
		return;
	}
	HandleEvents();
	if (FaceTexture)
	{
		UploadDueFrame();
	}
}

void UNpcFaceComponent::HandleEvents()
{
	npc_event Ev{};
	Ev.struct_size = sizeof(Ev);
	while (Performer->PollEvent(&Ev).code == NPC_OK)
	{
		const FString Message = UTF8_TO_TCHAR(Ev.message);
		switch (Ev.kind)
		{
			case NPC_EVENT_STATE_CHANGED:
				State = static_cast<ENpcPerformerState>(Ev.state);
				OnConnectionStateChanged.Broadcast(State, Message);
				break;
			case NPC_EVENT_STARTED:
			{
				npc_performer_status St{};
				St.struct_size = sizeof(St);
				Performer->GetStatus(&St);
				LatencyUs = St.latency_us;
				PayloadBytes = St.payload_bytes;
				EnsureTexture(St.width, St.height, St.texture_format);
				break;
			}
			case NPC_EVENT_LINE_STARTED:
				OnLineStarted.Broadcast(UTF8_TO_TCHAR(Ev.line_id), Message);
				break;
			case NPC_EVENT_LINE_FINISHED:
				OnLineFinished.Broadcast(UTF8_TO_TCHAR(Ev.line_id), Message);
				break;
			default:
				break;
		}
	}
}

void UNpcFaceComponent::EnsureTexture(int32 Width, int32 Height, int32 Format)
{
	const EPixelFormat Pixel = Format == NPC_TEXTURE_RGBA8 ? PF_R8G8B8A8 : PF_DXT1;
	if (FaceTexture && FaceTexture->GetSizeX() == Width && FaceTexture->GetSizeY() == Height &&
	    FaceTexture->GetPixelFormat() == Pixel)
	{
		return;
	}
	FaceTexture = UTexture2D::CreateTransient(Width, Height, Pixel);
	FaceTexture->SRGB = true;
	FaceTexture->NeverStream = true;
	FaceTexture->UpdateResource();
}

void UNpcFaceComponent::UploadDueFrame()
{
	if (PayloadBytes == 0)
	{
		return;
	}
	// Heap-owned: the render thread reads it after this function returns; freed in the cleanup.
	uint8* Data = static_cast<uint8*>(FMemory::Malloc(PayloadBytes));
	npc_frame_info Info{};
	Info.struct_size = sizeof(Info);
	const npc::Status St = Performer->PopFrame(NPC_CLOCK_AUTO, &Info, Data, PayloadBytes);
	if (!St.ok())
	{
		FMemory::Free(Data);  // NPC_NO_FRAME: keep showing the current face
		return;
	}
	const bool bBlock = Info.format != NPC_TEXTURE_RGBA8;
	// BC1 rows are rows of 4x4 blocks: pitch = blocks per row * 8 bytes.
	const uint32 Pitch = bBlock ? (Info.width / 4) * 8 : Info.width * 4;
	auto* Region = new FUpdateTextureRegion2D(0, 0, 0, 0, Info.width, Info.height);
	FaceTexture->UpdateTextureRegions(0, 1, Region, Pitch, bBlock ? 8 : 4, Data,
		[](uint8* SrcData, const FUpdateTextureRegion2D* Regions)
		{
			FMemory::Free(SrcData);
			delete Regions;
		});
}
