// Editor module: Tools > NPC Runtime > Check Sidecar, which asks the configured sidecar for its
// ServerInfo and reports the model, frame size and latency (or why it cannot be reached).
#include "Framework/Notifications/NotificationManager.h"
#include "Modules/ModuleManager.h"
#include "NpcRuntimeModule.h"
#include "ToolMenus.h"
#include "Widgets/Notifications/SNotificationList.h"
#include "npc_bridge.hpp"

#define LOCTEXT_NAMESPACE "NpcRuntimeEditor"

class FNpcRuntimeEditorModule : public IModuleInterface
{
public:
	virtual void StartupModule() override
	{
		UToolMenus::RegisterStartupCallback(FSimpleMulticastDelegate::FDelegate::CreateRaw(this, &FNpcRuntimeEditorModule::RegisterMenus));
	}

	virtual void ShutdownModule() override
	{
		UToolMenus::UnRegisterStartupCallback(this);
		UToolMenus::UnregisterOwner(this);
	}

private:
	void RegisterMenus()
	{
		FToolMenuOwnerScoped Owner(this);
		UToolMenu* Menu = UToolMenus::Get()->ExtendMenu("LevelEditor.MainMenu.Tools");
		FToolMenuSection& Section = Menu->FindOrAddSection("NpcRuntime");
		Section.AddMenuEntry("NpcRuntimeCheck", LOCTEXT("Check", "NPC Runtime: Check Sidecar"),
			LOCTEXT("CheckTip", "Ask the sidecar in Project Settings > NPC Runtime for its server info."),
			FSlateIcon(), FUIAction(FExecuteAction::CreateStatic(&FNpcRuntimeEditorModule::Check)));
	}

	static void Check()
	{
		FString Error;
		std::shared_ptr<npc::Client> Client = FNpcRuntimeModule::Get().GetClient(&Error);
		FText Text;
		if (!Client)
		{
			Text = FText::FromString(Error);
		}
		else
		{
			npc_server_info Info{};
			Info.struct_size = sizeof(Info);
			const npc::Status St = Client->GetServerInfo(2000, &Info);
			Text = St.ok()
				? FText::FromString(FString::Printf(TEXT("Sidecar %s: %s/%s, %ux%u @ %u fps, latency %.0f ms"),
					UTF8_TO_TCHAR(Info.server_version), UTF8_TO_TCHAR(Info.model_name), UTF8_TO_TCHAR(Info.model_config),
					Info.width, Info.height, Info.fps, Info.latency_us / 1000.0))
				: FText::FromString(FString::Printf(TEXT("Sidecar unreachable: %s"), UTF8_TO_TCHAR(St.message.c_str())));
		}
		FNotificationInfo Note(Text);
		Note.ExpireDuration = 6.f;
		FSlateNotificationManager::Get().AddNotification(Note);
	}
};

IMPLEMENT_MODULE(FNpcRuntimeEditorModule, NpcRuntimeEditor)

#undef LOCTEXT_NAMESPACE
