// The runtime module owns the one bridge client (one gRPC channel) that every NPC face shares.
#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleManager.h"

#include <memory>

namespace npc { class Client; }

class NPCRUNTIME_API FNpcRuntimeModule : public IModuleInterface
{
public:
	virtual void ShutdownModule() override;

	static FNpcRuntimeModule& Get() { return FModuleManager::LoadModuleChecked<FNpcRuntimeModule>("NpcRuntime"); }

	/** The shared client, created from UNpcRuntimeSettings on first use (never blocks). Null if the settings are invalid. */
	std::shared_ptr<npc::Client> GetClient(FString* OutError = nullptr);

private:
	FCriticalSection Lock;
	std::shared_ptr<npc::Client> Client;
};
