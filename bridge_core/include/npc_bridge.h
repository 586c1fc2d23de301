/*
 * npc_bridge.h — C ABI of the npc_runtime native bridge core.
 *
 * One client owns one gRPC channel to the sidecar; many performers (one per NPC, one Perform
 * stream each) share it. Performers reconnect by themselves: when the sidecar goes away the
 * performer keeps accepting audio and cues, retries with backoff, and reopens its stream (the
 * NPC's identity lives on the server) without any call from the engine.
 *
 * Conventions (why: Unity's P/Invoke and any C engine can bind this without glue code):
 *  - Every function returns an npc_result; 0 is success. Codes 1..16 are the gRPC status codes
 *    (the server's or the channel's); codes >= 100 are the bridge's own. npc_last_error()
 *    returns a message for the last failing call on the calling thread.
 *  - Handles are 64-bit integers, never pointers, and are never reused: a call with a handle
 *    that was destroyed returns NPC_ERR_CLOSED instead of touching freed memory.
 *  - Structs that the caller passes in or out start with `struct_size`; set it to
 *    sizeof(struct) so later versions can append fields without breaking old callers.
 *  - Times are microseconds (int64). The performer timeline starts at 0 when the performer is
 *    created and runs with the wall clock; audio pts, cue pts and frame pts all live on it, and
 *    stay continuous across reconnects.
 *  - Every function is thread-safe. Blocking calls take a timeout; none blocks longer.
 *  - No callbacks into the engine are required: state changes and stream events are queued and
 *    polled (npc_performer_poll_event) on the engine's own thread. A C callback is available for
 *    native engines that want one; it runs on a bridge thread.
 */
#ifndef NPC_BRIDGE_H
#define NPC_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(NPC_BRIDGE_BUILD)
#    define NPC_API __declspec(dllexport)
#  else
#    define NPC_API __declspec(dllimport)
#  endif
#else
#  define NPC_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this header. */
#define NPC_BRIDGE_ABI_VERSION 1

typedef uint64_t npc_client_t;
typedef uint64_t npc_performer_t;

typedef enum npc_result {
  NPC_OK = 0,
  /* gRPC status codes, as returned by the sidecar or the channel. */
  NPC_ERR_CANCELLED = 1,
  NPC_ERR_UNKNOWN = 2,
  NPC_ERR_INVALID_ARGUMENT = 3,
  NPC_ERR_DEADLINE_EXCEEDED = 4,
  NPC_ERR_NOT_FOUND = 5,
  NPC_ERR_ALREADY_EXISTS = 6,
  NPC_ERR_PERMISSION_DENIED = 7,
  NPC_ERR_RESOURCE_EXHAUSTED = 8,
  NPC_ERR_FAILED_PRECONDITION = 9,
  NPC_ERR_ABORTED = 10,
  NPC_ERR_OUT_OF_RANGE = 11,
  NPC_ERR_UNIMPLEMENTED = 12,
  NPC_ERR_INTERNAL = 13,
  NPC_ERR_UNAVAILABLE = 14,
  NPC_ERR_DATA_LOSS = 15,
  NPC_ERR_UNAUTHENTICATED = 16,
  /* The bridge's own codes. */
  NPC_ERR_NULL_ARGUMENT = 100,   /* a required pointer was NULL */
  NPC_ERR_BAD_HANDLE = 101,      /* the handle was never issued (or is 0) */
  NPC_ERR_CLOSED = 102,          /* the handle was destroyed, or its client was */
  NPC_ERR_BUFFER_TOO_SMALL = 103,/* output buffer too small; nothing was consumed */
  NPC_ERR_BUFFER_FULL = 104,     /* bounded queue full (audio ahead, cues); retry later */
  NPC_ERR_NOT_STREAMING = 105,   /* performer not started yet, stopped or failed */
  NPC_NO_FRAME = 106,            /* not an error: no frame is due at this clock */
  NPC_NO_EVENT = 107             /* not an error: the event queue is empty */
} npc_result;

typedef enum npc_texture_format {
  NPC_TEXTURE_DEFAULT = 0, /* the server's default (BC1) */
  NPC_TEXTURE_BC1 = 1,     /* 8 bytes per 4x4 block: Unity TextureFormat.DXT1, Unreal PF_DXT1 */
  NPC_TEXTURE_RGBA8 = 2
} npc_texture_format;

typedef enum npc_channel {
  NPC_CHANNEL_SPEAK = 1,   /* what the NPC says (its dialogue line): drives the lips */
  NPC_CHANNEL_LISTEN = 2   /* what the NPC hears (the player's voice): drives listening */
} npc_channel;

/* gRPC channel connectivity, as reported by npc_client_get_state. */
typedef enum npc_connection_state {
  NPC_CONNECTION_IDLE = 0,
  NPC_CONNECTION_CONNECTING = 1,
  NPC_CONNECTION_READY = 2,
  NPC_CONNECTION_TRANSIENT_FAILURE = 3,
  NPC_CONNECTION_SHUTDOWN = 4
} npc_connection_state;

typedef enum npc_performer_state {
  NPC_PERFORMER_CONNECTING = 0,   /* first stream not open yet */
  NPC_PERFORMER_STREAMING = 1,    /* frames flowing */
  NPC_PERFORMER_RECONNECTING = 2, /* stream lost; retrying with backoff */
  NPC_PERFORMER_STOPPED = 3,      /* ended by npc_performer_stop (server sent STOPPED) */
  NPC_PERFORMER_FAILED = 4        /* ended by an error that retrying cannot fix (see error) */
} npc_performer_state;

/* Special pts / clock values. */
#define NPC_PTS_AUTO INT64_MIN       /* audio: right after this channel's queued audio, or now */
                                     /* cues: now on the performer timeline */
#define NPC_PTS_NONE INT64_MIN       /* line end: open (until the next line) */
#define NPC_CLOCK_AUTO INT64_MIN     /* pop_frame: the bridge's playback clock (now - latency) */
#define NPC_CLOCK_LATEST INT64_MAX   /* pop_frame: the newest frame, whatever its pts */
#define NPC_CLOCK_OLDEST (INT64_MIN + 1) /* pop_frame: the oldest queued frame (capture/recording:
                                            every frame in order, none skipped) */

/* ---- library ------------------------------------------------------------------------------ */

NPC_API uint32_t npc_bridge_abi_version(void);
NPC_API const char* npc_bridge_version(void);
/* Message of the last failing call on this thread ("" if none). Valid until the next call. */
NPC_API const char* npc_last_error(void);
/* Static name of a result code ("NPC_ERR_NOT_FOUND"). */
NPC_API const char* npc_result_name(int32_t result);
/* Destroys every client and performer (editor domain reload, application quit). */
NPC_API npc_result npc_bridge_shutdown_all(void);

/* ---- client: one channel to one sidecar --------------------------------------------------- */

typedef struct npc_client_config {
  uint32_t struct_size;
  const char* target;            /* "127.0.0.1:50051" (any gRPC target); NULL: that default */
  int32_t use_tls;               /* 0: plaintext (local sidecar); 1: TLS */
  const char* tls_root_certs_pem;/* NULL: system roots */
  const char* client_name;       /* free text for server logs ("unity:Tavern"); may be NULL */
  uint32_t reconnect_min_ms;     /* first retry delay; 0: 100 */
  uint32_t reconnect_max_ms;     /* retry delay cap (doubles up to it, jittered); 0: 500 */
  uint32_t frame_queue_capacity; /* frames held per performer (oldest dropped); 0: 32 */
  uint32_t max_audio_ahead_ms;   /* audio buffered per channel ahead of now; 0: 30000 */
} npc_client_config;

NPC_API void npc_client_config_init(npc_client_config* config);
/* Never blocks and succeeds without a server: the channel connects in the background. */
NPC_API npc_result npc_client_create(const npc_client_config* config, npc_client_t* out);
/* Stops every performer of this client (immediately), closes the channel, frees everything. */
NPC_API npc_result npc_client_destroy(npc_client_t client);
NPC_API npc_result npc_client_get_state(npc_client_t client, npc_connection_state* out);
/* Blocks until the channel is READY: NPC_OK, or NPC_ERR_DEADLINE_EXCEEDED after timeout_ms. */
NPC_API npc_result npc_client_wait_ready(npc_client_t client, uint32_t timeout_ms);

/* Called on a bridge thread whenever the channel's connectivity changes. */
typedef void (*npc_connection_callback)(void* user, npc_connection_state state);
NPC_API npc_result npc_client_set_connection_callback(npc_client_t client,
                                                      npc_connection_callback callback,
                                                      void* user);

typedef struct npc_server_info {
  uint32_t struct_size;
  uint32_t protocol_version;
  uint32_t fps;
  uint32_t width;
  uint32_t height;
  uint32_t chunk_frames;
  int64_t latency_us;          /* typical PerformanceStarted.latency_us */
  uint32_t model_sample_rate;  /* audio is resampled to this before it is sent */
  uint32_t emotion_count;
  char server_version[32];
  char model_name[64];
  char model_config[32];
  char emotion_tags[512];      /* vocabulary tags, comma separated, in weight order */
} npc_server_info;

NPC_API npc_result npc_client_get_server_info(npc_client_t client, uint32_t timeout_ms,
                                              npc_server_info* out);

typedef struct npc_image {
  const uint8_t* data;  /* PNG or JPEG bytes */
  size_t size;
} npc_image;

typedef struct npc_register_params {
  uint32_t struct_size;
  const char* npc_id;          /* NULL or "": the server assigns one */
  const char* display_name;    /* may be NULL */
  const npc_image* images;     /* 1..4 reference images */
  size_t image_count;
  const char* default_emotion; /* tag or preset; NULL: neutral */
  float default_intensity;     /* 0..1 */
} npc_register_params;

/* Registers an NPC; writes its id (NUL-terminated) to id_out (64 bytes is enough). */
NPC_API npc_result npc_client_register_npc(npc_client_t client, const npc_register_params* params,
                                           uint32_t timeout_ms, char* id_out, size_t id_capacity);
NPC_API npc_result npc_client_delete_npc(npc_client_t client, const char* npc_id,
                                         uint32_t timeout_ms);

/* ---- performer: one NPC's live Perform stream ----------------------------------------------- */

typedef struct npc_performer_config {
  uint32_t struct_size;
  const char* npc_id;             /* required */
  npc_texture_format texture_format;
  int32_t bottom_up;              /* 1: rows bottom-to-top (Unity's texture origin) */
  uint64_t seed;
  int32_t take_over;              /* 1: end another live stream of this NPC instead of failing */
  const char* initial_emotion;    /* tag or preset; NULL: the NPC's default */
  float initial_intensity;
} npc_performer_config;

NPC_API void npc_performer_config_init(npc_performer_config* config);
/* Starts streaming in the background and returns at once; watch the state or its events. */
NPC_API npc_result npc_performer_create(npc_client_t client, const npc_performer_config* config,
                                        npc_performer_t* out);
/* Cancels the stream, joins its threads and frees it. The handle is dead afterwards. */
NPC_API npc_result npc_performer_destroy(npc_performer_t performer);
/* Graceful end: the server renders the audio it has, then the state becomes STOPPED. */
NPC_API npc_result npc_performer_stop(npc_performer_t performer, int32_t immediate);
/* Blocks until STREAMING (NPC_OK), a terminal state (its error code), or the timeout. */
NPC_API npc_result npc_performer_wait_streaming(npc_performer_t performer, uint32_t timeout_ms);

typedef struct npc_performer_status {
  uint32_t struct_size;
  npc_performer_state state;
  int32_t error;                 /* npc_result that ended a FAILED performer (else 0) */
  npc_texture_format texture_format;
  uint32_t width, height, fps, payload_bytes;
  int64_t latency_us;            /* delay audio playback by this much (see docs) */
  int64_t timeline_us;           /* now on the performer timeline */
  uint64_t frames_received;
  uint64_t frames_dropped;       /* dropped by the bounded queue, late, or skipped by server */
  uint64_t reconnects;           /* streams reopened after a loss */
  uint64_t queued_frames;
} npc_performer_status;

NPC_API npc_result npc_performer_get_status(npc_performer_t performer, npc_performer_status* out);

/* Audio. Any sample rate 8000..192000 Hz, mono; resampled to the model rate. pts on the performer
 * timeline, or NPC_PTS_AUTO. Returns NPC_ERR_BUFFER_FULL when more than max_audio_ahead_ms would
 * be queued ahead of now, NPC_ERR_OUT_OF_RANGE for one buffer longer than 60 s. Accepted while
 * connecting or reconnecting too (audio for the future is resent on the new stream). */
NPC_API npc_result npc_performer_push_audio_pcm16(npc_performer_t performer, npc_channel channel,
                                                  const int16_t* samples, size_t count,
                                                  uint32_t sample_rate, int64_t pts_us);
NPC_API npc_result npc_performer_push_audio_float(npc_performer_t performer, npc_channel channel,
                                                  const float* samples, size_t count,
                                                  uint32_t sample_rate, int64_t pts_us);
/* Emotion: a vocabulary tag or preset at an intensity 0..1, blended in over transition_s. */
NPC_API npc_result npc_performer_set_emotion(npc_performer_t performer, const char* name,
                                             float intensity, float transition_s, int64_t pts_us);
/* Raw weights in the server's tag order (npc_server_info.emotion_tags). */
NPC_API npc_result npc_performer_set_emotion_weights(npc_performer_t performer,
                                                     const float* weights, size_t count,
                                                     float transition_s, int64_t pts_us);
/* Marks a dialogue line (subtitles): LINE_STARTED / LINE_FINISHED events and frame line ids.
 * line_id: 1..127 characters; start NPC_PTS_AUTO = now; end NPC_PTS_NONE = open. */
NPC_API npc_result npc_performer_mark_line(npc_performer_t performer, const char* line_id,
                                           int64_t start_pts_us, int64_t end_pts_us,
                                           const char* text);
/* Now on the performer timeline; and the playback clock (now - latency_us). */
NPC_API npc_result npc_performer_timeline_us(npc_performer_t performer, int64_t* now_us,
                                             int64_t* playback_clock_us);

#define NPC_MAX_EMOTIONS 16
typedef struct npc_frame_info {
  uint32_t struct_size;
  uint64_t sequence;       /* 0, 1, 2, ... counts frames received, across reconnects */
  uint64_t stream_index;   /* Frame.index within the current stream */
  int64_t pts_us;          /* on the performer timeline */
  npc_texture_format format;
  uint32_t width, height;
  uint32_t payload_bytes;
  int32_t speaking, listening;
  uint32_t emotion_count;
  float emotion[NPC_MAX_EMOTIONS];
  char line_id[128];
} npc_frame_info;

/* Pops the newest frame whose pts <= clock_us, discarding older ones, and copies its payload into
 * dst (the engine's texture memory). NPC_NO_FRAME if none is due. If dst_capacity is too small:
 * NPC_ERR_BUFFER_TOO_SMALL, info->payload_bytes says how much is needed, nothing is consumed.
 * dst may be NULL with dst_capacity 0 to peek the size that way. */
NPC_API npc_result npc_performer_pop_frame(npc_performer_t performer, int64_t clock_us,
                                           npc_frame_info* info, uint8_t* dst,
                                           size_t dst_capacity);

typedef enum npc_event_kind {
  NPC_EVENT_STATE_CHANGED = 1,   /* state (and error, for FAILED / RECONNECTING) */
  NPC_EVENT_STARTED = 2,         /* a stream opened (first or reopened): see status */
  NPC_EVENT_LINE_STARTED = 3,
  NPC_EVENT_LINE_FINISHED = 4,
  NPC_EVENT_EMOTION_APPLIED = 5,
  NPC_EVENT_AUDIO_LATE = 6,
  NPC_EVENT_FRAMES_DROPPED = 7,
  NPC_EVENT_SERVER_SHUTDOWN = 8,
  NPC_EVENT_STOPPED = 9
} npc_event_kind;

typedef struct npc_event {
  uint32_t struct_size;
  npc_event_kind kind;
  npc_performer_state state;  /* for STATE_CHANGED */
  int32_t error;              /* npc_result for STATE_CHANGED to RECONNECTING / FAILED */
  int64_t pts_us;             /* on the performer timeline */
  int64_t duration_us;
  uint32_t frame_count;
  char line_id[128];
  char message[256];
} npc_event;

NPC_API npc_result npc_performer_poll_event(npc_performer_t performer, npc_event* out);

#ifdef __cplusplus
}
#endif
#endif /* NPC_BRIDGE_H */
