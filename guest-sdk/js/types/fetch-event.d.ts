// An Aura function in JavaScript answers fetch events, as a service worker
// does: `addEventListener("fetch", (event) => event.respondWith(response))`.
declare function addEventListener(type: "fetch", listener: (event: FetchEvent) => void): void;
