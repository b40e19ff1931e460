/// <reference path="./interfaces/aura-platform-auth.d.ts" />
/// <reference path="./interfaces/aura-platform-db.d.ts" />
/// <reference path="./interfaces/aura-platform-events.d.ts" />
/// <reference path="./interfaces/aura-platform-secrets.d.ts" />
/// <reference path="./interfaces/aura-platform-storage.d.ts" />
/// <reference path="./interfaces/wasi-clocks-monotonic-clock.d.ts" />
/// <reference path="./interfaces/wasi-http-incoming-handler.d.ts" />
/// <reference path="./interfaces/wasi-http-types.d.ts" />
/// <reference path="./interfaces/wasi-io-error.d.ts" />
/// <reference path="./interfaces/wasi-io-poll.d.ts" />
/// <reference path="./interfaces/wasi-io-streams.d.ts" />
declare module 'aura:function/function' {
  export type * as AuraPlatformAuth010 from 'aura:platform/auth@0.1.0'; // import aura:platform/auth@0.1.0
  export type * as AuraPlatformDb010 from 'aura:platform/db@0.1.0'; // import aura:platform/db@0.1.0
  export type * as AuraPlatformEvents010 from 'aura:platform/events@0.1.0'; // import aura:platform/events@0.1.0
  export type * as AuraPlatformSecrets010 from 'aura:platform/secrets@0.1.0'; // import aura:platform/secrets@0.1.0
  export type * as AuraPlatformStorage010 from 'aura:platform/storage@0.1.0'; // import aura:platform/storage@0.1.0
  export type * as WasiClocksMonotonicClock0210 from 'wasi:clocks/monotonic-clock@0.2.10'; // import wasi:clocks/monotonic-clock@0.2.10
  export type * as WasiHttpTypes0210 from 'wasi:http/types@0.2.10'; // import wasi:http/types@0.2.10
  export type * as WasiIoError0210 from 'wasi:io/error@0.2.10'; // import wasi:io/error@0.2.10
  export type * as WasiIoPoll0210 from 'wasi:io/poll@0.2.10'; // import wasi:io/poll@0.2.10
  export type * as WasiIoStreams0210 from 'wasi:io/streams@0.2.10'; // import wasi:io/streams@0.2.10
  export * as incomingHandler from 'wasi:http/incoming-handler@0.2.10'; // export wasi:http/incoming-handler@0.2.10
}
