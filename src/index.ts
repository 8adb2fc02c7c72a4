/**
 * ft as a library: the same transfer code the `ft` command uses. Nothing here prints or exits;
 * progress and outcomes arrive as events, failures as FtError with a stable `code`.
 */
export { BandwidthLimit, type BandwidthLimitOptions } from './bandwidth-limit.js';
export { send, type SendOptions, type SendReport, type FileResult, type FileStatus } from './sender/sender.js';
export type { StreamSource } from './sender/stream-send.js';
export { serve, Receiver, type ServeOptions } from './receiver/server.js';
export { SERVE_DEFAULTS, SEND_DEFAULTS, DISCOVER_DEFAULTS } from './defaults.js';
export type { ReceiverEvent, SendEvent } from './ingest/events.js';
export { defaultHashCachePath } from './sender/hash-cache.js';
export { tcpConnector } from './transport/tcp-connector.js';
export { tlsConnector } from './transport/tls-connector.js';
export { tlsListener } from './transport/tls-listener.js';
export type { Channel, ChannelSecurity } from './transport/channel.js';
export type { TrustPolicy, UnknownReceiver } from './sender/receiver-trust.js';
export type { Connector, ConnectTarget, ConnectorOptions } from './transport/connector.js';
export { listenTcp } from './transport/tcp-listener.js';
export type { IncomingConnection, Listener, ListenerFactory, ListenOptions } from './transport/listener.js';
export { listPartials, type ListPartialsOptions } from './storage/local/partial-listing.js';
export type { PartialListing, PartialUpload, UnreadablePartial } from './storage/upload-store.js';
export type { Placed, StoreCapabilities, StoredIdentity, TargetState, Upload, UploadKey, UploadStore, UploadWriter } from './storage/upload-store.js';
export { defaultSenderKeyPath } from './auth/owner-key.js';
export { defaultIdentityDir, loadOrCreateIdentity, type LoadedIdentity } from './auth/identity-store.js';
export { generateIdentity, identityFrom, type Identity } from './auth/identity.js';
export { parseFingerprint, shortFingerprint } from './auth/fingerprint.js';
export { TrustStore, defaultTrustStorePath, type PinnedReceiver } from './auth/trust-store.js';
export { discover, ReceiverWatcher, type Claim, type DiscoverOptions, type FoundReceiver } from './discovery/discover.js';
export { FtError, ERROR_CODES, WIRE_CODES, LOCAL_CODES, type ErrorCode, type WireCode, type LocalCode } from './errors.js';
export { CONFLICT_POLICIES, type ConflictPolicy } from './storage/conflict-policy.js';
export { fileSystemOf, nodeFileSystem, type FileSystem } from './file-system.js';
export { DEFAULT_PORT, MAX_FILES_PER_CONNECTION, PROTOCOL_VERSION } from './wire/messages.js';
export { escapeForDisplay } from './names/safe-name.js';
