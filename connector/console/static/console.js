// The console's own script (progressive enhancement: every page works without it).
// It tells the server the viewer's time zone, so dates are shown in it.
(function () {
  "use strict";
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && /^[A-Za-z0-9_\/+-]{1,64}$/.test(tz) && document.cookie.indexOf("hks_tz=" + tz) === -1) {
      document.cookie = "hks_tz=" + tz + "; path=/console; SameSite=Strict; max-age=31536000";
    }
  } catch (e) { /* no Intl: the language's default zone is used */ }
})();
