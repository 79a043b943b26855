// The API reference page: Swagger UI on the document the module serves. "../openapi.json" is
// resolved against this page, so a page at /ai/docs/ reads /ai/openapi.json (PEBaseURI /ai).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: new URL('../openapi.json', window.location.href).href,
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
  });
};
