/** fr-par-1, nl-ams-2, pl-waw-3…: a Scaleway zone, as settings and the API name it. */
export const SCALEWAY_ZONE = /^[a-z]{2}-[a-z]{3}-\d$/
