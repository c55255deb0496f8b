<?php
// Echo backend for the portcullis differential tests: PHP built-in server
// (php -S ... router.php). Every request is handled here (never `return false`).
//
// method: Symfony Request::getMethod() with enableHttpMethodParameterOverride:
//         POST + non-empty X-HTTP-Method-Override -> strtoupper(header value),
//         else the `_method` body or query parameter.
// path:   Laminas/Zend PhpEnvironment\Request::detectRequestUri() (X-Original-Url,
//         then X-Rewrite-Url, then REQUEST_URI), path part, rawurldecode()d.

const NAME = 'php';

$method = $_SERVER['REQUEST_METHOD'] ?? '';
if ($method === 'POST') {
    // Symfony: the header, else `_method` from the body, else from the query.
    $override = ($_SERVER['HTTP_X_HTTP_METHOD_OVERRIDE'] ?? '') !== ''
        ? $_SERVER['HTTP_X_HTTP_METHOD_OVERRIDE']
        : ($_POST['_method'] ?? $_GET['_method'] ?? '');
    if (is_string($override) && $override !== '') {
        $method = strtoupper($override);
    }
}

if (isset($_SERVER['HTTP_X_ORIGINAL_URL'])) {
    $requestUri = $_SERVER['HTTP_X_ORIGINAL_URL'];
} elseif (isset($_SERVER['HTTP_X_REWRITE_URL'])) {
    $requestUri = $_SERVER['HTTP_X_REWRITE_URL'];
} else {
    $requestUri = $_SERVER['REQUEST_URI'] ?? '';
}
$path = parse_url($requestUri, PHP_URL_PATH);
if ($path === false) {
    $path = $requestUri;                // parse_url() gave up: keep the raw string
} else {
    $path = rawurldecode($path ?? ''); // null: the URI has no path component
}

$headers = [];
foreach ($_SERVER as $key => $value) {
    if (strncmp($key, 'HTTP_', 5) === 0) {
        $headers[$key] = $value;
    }
}

header('X-Diff-Backend: ' . NAME);
header('Content-Type: application/json');
http_response_code(200);
echo json_encode([
    'backend' => NAME,
    'method' => $method,
    'path' => $path,
    'host' => $_SERVER['HTTP_HOST'] ?? '',
    'user' => $_SERVER['HTTP_X_AUTH_SUBJECT'] ?? null,
    'headers' => (object) $headers,
], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
