// Swagger UI of the gateway's OpenAPI document (named by the page), from swagger-ui-dist as the
// gateway serves it: no CDN.

interface SwaggerUIBundle {
  (options: Record<string, unknown>): unknown;
  presets: { apis: unknown };
}

declare const SwaggerUIBundle: SwaggerUIBundle;

const root = document.getElementById("swagger-ui");
SwaggerUIBundle({
  url: root?.dataset.url ?? "/openapi.json",
  domNode: root,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
