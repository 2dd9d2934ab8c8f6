//! The OpenAPI 3.1 description of the JSON API, served at `/api/openapi.json`.

use serde_json::{Value, json};

/// The document.
pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let error_response = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": error } } });
    let picture_json = json!({
        "type": "object",
        "properties": {
            "image": { "type": "string", "description": "data URL, e.g. data:image/png;base64,..." },
            "pixels": { "type": "array", "items": { "type": "number", "minimum": 0, "maximum": 1 }, "minItems": 784, "maxItems": 784 }
        }
    });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "ml-ui digit recognizer", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/predict": { "post": {
                "summary": "Classify a picture of a digit",
                "requestBody": { "required": true, "content": {
                    "image/png": { "schema": { "type": "string", "format": "binary" } },
                    "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
                    "application/json": { "schema": picture_json }
                } },
                "responses": {
                    "200": { "description": "The prediction", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Prediction" } } } },
                    "400": error_response("Undecodable or malformed input"),
                    "413": error_response("Body or image over the limits"),
                    "415": error_response("Unsupported content type or image format"),
                    "422": error_response("The drawing has no ink (code empty_drawing)"),
                    "503": error_response("No model loaded yet; see Retry-After")
                }
            } },
            "/api/model": { "get": {
                "summary": "The served model and its lineage",
                "responses": { "200": { "description": "Model information" }, "503": error_response("No model loaded yet") }
            } },
            "/api/feedback": { "post": {
                "summary": "Store a corrected drawing as training data",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["label"],
                    "properties": {
                        "image": { "type": "string" }, "pixels": { "type": "array", "items": { "type": "number" } },
                        "label": { "type": "integer", "minimum": 0, "maximum": 9 },
                        "predicted": { "type": "integer" }, "model_version": { "type": "string" }
                    }
                } } } },
                "responses": { "201": { "description": "Stored" }, "400": error_response("Invalid label or picture"), "422": error_response("Empty drawing") }
            } },
            "/healthz": { "get": { "summary": "The process is alive", "responses": { "200": { "description": "Alive" } } } },
            "/readyz": { "get": { "summary": "A model is loaded and warmed up", "responses": { "200": { "description": "Ready" }, "503": error_response("Not ready") } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "OpenMetrics text" } } } },
            "/api/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        },
        "components": { "schemas": {
            "Prediction": {
                "type": "object", "required": ["digit", "probabilities", "model_version"],
                "properties": {
                    "digit": { "type": "integer", "minimum": 0, "maximum": 9 },
                    "probabilities": { "type": "array", "items": { "type": "number" }, "minItems": 10, "maxItems": 10 },
                    "model_version": { "type": "string" }
                }
            },
            "Error": {
                "type": "object", "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" }
                } } }
            }
        } }
    })
}
