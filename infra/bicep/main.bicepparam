// Parameters for main.bicep. The two values that identify the operator's Liutong API app
// registration come from the environment, so nothing tenant-specific is committed:
//
//   export LIUTONG_API_APP_ID_URI=api://liutong            # the app registration's App ID URI
//   export LIUTONG_API_CLIENT_ID=<application (client) ID>
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
//
// The two secrets are generated only when asked, on the first deployment:
//   LIUTONG_CREATE_MASTER_SECRET=true LIUTONG_CREATE_WEBHOOK_SECRET=true az deployment group create ...
// scripts/deploy.sh sets these for you after checking which secrets exist. Never set them for a
// vault that has the secret: a new master secret is a master rotation, a new webhook secret breaks
// the notification URL registered in Partner Center.
using './main.bicep'

param environmentName = 'liutong'
param apiAppIdUri = readEnvironmentVariable('LIUTONG_API_APP_ID_URI')
param apiClientId = readEnvironmentVariable('LIUTONG_API_CLIENT_ID')
// The admin API's own app registration (app role Liutong.Admin); unset, the admin API answers 503.
param adminAppIdUri = readEnvironmentVariable('LIUTONG_ADMIN_APP_ID_URI', '')
param adminClientId = readEnvironmentVariable('LIUTONG_ADMIN_CLIENT_ID', '')
param createMasterSecret = bool(readEnvironmentVariable('LIUTONG_CREATE_MASTER_SECRET', 'false'))
param createWebhookSecret = bool(readEnvironmentVariable('LIUTONG_CREATE_WEBHOOK_SECRET', 'false'))

param storageSku = 'Standard_ZRS'
param instanceMemoryMB = 2048
param maximumInstanceCount = 40
param httpPerInstanceConcurrency = 300

// An Azure OpenAI account the proxy calls with the service identity, if any:
// param openAiAccountId = '/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>'

// Tunable LIUTONG_* settings, e.g.:
// param settingOverrides = {
//   LIUTONG_KEY_ROTATION_DAYS: '14'
// }
