// Starts Swagger UI on /v1/docs (a file of its own: the page's Content Security Policy allows
// no inline script). The document's address is read from the page.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
  });
});
