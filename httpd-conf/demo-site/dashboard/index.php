<?php
// A protected page: Apache (mod_scalekit) has signed the user in before PHP runs.
function e($s) { return htmlspecialchars((string)$s, ENT_QUOTES); }
$name = $_SERVER['SCALEKIT_NAME'] ?? '';
$vars = array_filter($_SERVER, fn($k) => $k === 'REMOTE_USER' || $k === 'AUTH_TYPE'
                                      || str_starts_with($k, 'SCALEKIT_'), ARRAY_FILTER_USE_KEY);
ksort($vars);
?>
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dashboard</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48em;margin:3em auto;padding:0 1em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;word-break:break-all}table{border-collapse:collapse}</style></head>
<body>
<h1 id="welcome">Welcome, <?= e($name !== '' ? $name : $_SERVER['REMOTE_USER'] ?? 'stranger') ?></h1>
<p id="email"><?= e($_SERVER['SCALEKIT_EMAIL'] ?? '') ?></p>
<p>What PHP sees (<code>$_SERVER</code>), set by mod_scalekit:</p>
<table>
<tr><th>variable</th><th>value</th></tr>
<?php foreach ($vars as $k => $v): ?>
<tr><td><?= e($k) ?></td><td><?= e($v) ?></td></tr>
<?php endforeach ?>
</table>
<p><a href="/dashboard/whoami.cgi">The same seen by a CGI script</a> &middot;
<a id="signout" href="/api/auth/logout">Sign out</a> &middot; <a href="/">Home</a></p>
</body>
</html>
