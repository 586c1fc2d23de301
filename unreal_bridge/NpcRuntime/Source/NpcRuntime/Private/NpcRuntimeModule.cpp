#include "NpcRuntimeModule.h"

#include "Misc/FileHelper.h"
#include "NpcRuntimeSettings.h"
#include "npc_bridge.hpp"

DEFINE_LOG_CATEGORY_STATIC(LogNpcRuntime, Log, All);

IMPLEMENT_MODULE(FNpcRuntimeModule, NpcRuntime)

std::shared_ptr<npc::Client> FNpcRuntimeModule::GetClient(FString* OutError)
{
	FScopeLock Guard(&Lock);
	if (Client)
	{
		return Client;
	}
	const UNpcRuntimeSettings* S = GetDefault<UNpcRuntimeSettings>();
	npc::ClientOptions O;
	O.target = TCHAR_TO_UTF8(*S->ServerAddress);
	O.use_tls = S->bUseTls;
	if (S->bUseTls && !S->TlsRootCertsPem.FilePath.IsEmpty())
	{
		FString Pem;
		FFileHelper::LoadFileToString(Pem, *S->TlsRootCertsPem.FilePath);
		O.tls_root_certs_pem = TCHAR_TO_UTF8(*Pem);
	}
	O.client_name = TCHAR_TO_UTF8(*S->ClientName);
	O.reconnect_min_ms = static_cast<uint32_t>(S->ReconnectMinMs);
	O.reconnect_max_ms = static_cast<uint32_t>(FMath::Max(S->ReconnectMinMs, S->ReconnectMaxMs));
	O.frame_queue_capacity = static_cast<uint32_t>(S->FrameQueueCapacity);
	O.max_audio_ahead_ms = static_cast<uint32_t>(S->MaxAudioAheadMs);
	const npc::Status St = npc::Client::Create(O, &Client);
	if (!St.ok())
	{
		const FString Msg = UTF8_TO_TCHAR(St.message.c_str());
		UE_LOG(LogNpcRuntime, Error, TEXT("NPC Runtime client: %s"), *Msg);
		if (OutError) *OutError = Msg;
		Client.reset();
	}
	return Client;
}

void FNpcRuntimeModule::ShutdownModule()
{
	FScopeLock Guard(&Lock);
	if (Client)
	{
		Client->Shutdown();  // stops every performer and joins the bridge threads
		Client.reset();
	}
}
