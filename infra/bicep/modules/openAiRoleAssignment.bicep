// One role assignment on an existing Azure OpenAI (Cognitive Services) account, in that account's
// resource group. The role ID comes from the map in roleAssignments.bicep.

param accountName string
param principalId string

@description('Role-definition GUID (Cognitive Services OpenAI User, from the role map).')
param roleDefinitionGuid string

resource account 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = {
  name: accountName
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionGuid)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
