// Kaiwa's service worker. go-app fills in the version, which changes whenever any file of the
// app changes, and the list of resources: the app shell ("/") and its assets.
//
// Every file of one version is cached together in install and served from that cache, so a page
// never mixes files of two versions. Page loads answer with the cached shell, which routes any
// page itself: a room reloads offline too. The API and the WebSocket never touch the cache.
// When a new version is installed, go-app tells the page, which offers to reload.

const cacheName = "kaiwa-{{.Version}}";
const shell = "/";
const resourcesToCache = {{.ResourcesToCache}};

// The room list's snapshot (app/snapshot.go): the app keeps it in its own cache, which outlives
// versions, and the worker puts it in the page of "/" while the session hint cookie is set.
const snapshotCache = "kaiwa-snapshot";
const snapshotKey = "/kaiwa-snapshot.html";
const sessionHintCookie = "kaiwa_session";

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(cacheName);
      // "reload" skips the HTTP cache, so a new version never caches a file of an older one.
      await cache.addAll(
        resourcesToCache.map((url) => new Request(url, { cache: "reload" }))
      );
      await self.skipWaiting();
    })()
  );
});

// Activation drops the caches of older versions. It does not claim pages: pages an older worker
// controls move to this one by themselves (skipWaiting), and go-app offers them a reload, while
// the very first page stays uncontrolled, so go-app does not take a first install for an update.
self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const keys = await caches.keys();
      await Promise.all(
        keys
          .filter((key) => key !== cacheName && key !== snapshotCache)
          .map((key) => caches.delete(key))
      );
    })()
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return;
  }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || passThrough(url.pathname)) {
    return; // the browser fetches it as if there were no worker
  }
  if (request.mode === "navigate" && url.pathname === "/") {
    event.respondWith(withSnapshot(fromCache(shell, request)));
    return;
  }
  if (request.mode === "navigate" && isPage(url.pathname)) {
    event.respondWith(fromCache(shell, request));
    return;
  }
  event.respondWith(fromCache(request, request));
});

// passThrough reports whether a path is never cached: the API, the WebSocket and the server's
// own endpoints and pages (/setup and /ca.crt are not the app's).
function passThrough(path) {
  return (
    path.startsWith("/api/") ||
    path === "/ws" ||
    path === "/healthz" ||
    path === "/metrics" ||
    path === "/setup" ||
    path === "/ca.crt"
  );
}

// isPage reports whether a path is one of the app's pages rather than a file.
function isPage(path) {
  return !path.startsWith("/web/") && !path.split("/").pop().includes(".");
}

// fromCache answers with the cached copy of key, or from the network when this version has none.
async function fromCache(key, request) {
  const cache = await caches.open(cacheName);
  const cached = await cache.match(key, { ignoreVary: true });
  if (cached) {
    return cached;
  }
  return fetch(request);
}

// withSnapshot returns the page with the room list's snapshot at the end of its body, after
// go-app's loader (go-app makes the body's first element the app's root): the snapshot shows
// above both until the app removes it. The page is left as it is when nobody is signed in (no
// session hint cookie, or a browser whose worker cannot read cookies), or when there is no
// snapshot.
async function withSnapshot(pagePromise) {
  const [page, snapshot] = await Promise.all([pagePromise, signedInSnapshot()]);
  if (!snapshot || !page.ok || !(page.headers.get("Content-Type") || "").startsWith("text/html")) {
    return page;
  }
  const html = await page.text();
  const at = html.lastIndexOf("</body>");
  if (at < 0) {
    return new Response(html, page);
  }
  const headers = new Headers(page.headers);
  headers.delete("Content-Length");
  headers.delete("ETag");
  return new Response(html.slice(0, at) + snapshot + html.slice(at), {
    status: page.status,
    statusText: page.statusText,
    headers,
  });
}

// signedInSnapshot returns the snapshot's HTML, or null when there is none or nobody is signed in.
async function signedInSnapshot() {
  try {
    if (!self.cookieStore || !(await self.cookieStore.get(sessionHintCookie))) {
      return null;
    }
    const cached = await (await caches.open(snapshotCache)).match(snapshotKey);
    return cached ? await cached.text() : null;
  } catch (err) {
    return null;
  }
}

// A click on a notification opens its room: in a tab of the app, which the page's own router
// moves there (no reload), or else in a new window. The room opens even when the browser
// refuses to focus the tab (it allows that only for a short while after the click).
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const path = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const client = windows.find((c) => new URL(c.url).origin === self.location.origin);
      if (client) {
        client.postMessage({ type: "kaiwa.open", url: path });
        await client.focus().catch(() => {});
        return;
      }
      await self.clients.openWindow(path);
    })()
  );
});
